# CLIP-DINOiser (released heads, checkpoints/clip_dinoiser/last.pt) on ADE20K val, 150 classes.
#   python tools/test.py configs/clip_dinoiser/clip-dinoiser_vit-b16-laion2b_ade20k.py
_base_ = ['./_base_/clip-dinoiser_vit-b16.py', '../_base_/datasets/ade20k_ov.py']
model = dict(decode_head=dict(class_names='ade20k', background_rule=False))
