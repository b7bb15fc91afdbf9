# MaskCLIP + DINO ViT-B/16 refinement (training-free) on ADE20K val, 150 classes.
#   python tools/test.py configs/clip_dinoiser/maskclip-dinorefine_vit-b16-laion2b_ade20k.py
_base_ = ['./_base_/maskclip-dinorefine_vit-b16.py', '../_base_/datasets/ade20k_ov.py']
model = dict(decode_head=dict(class_names='ade20k', background_rule=False))
