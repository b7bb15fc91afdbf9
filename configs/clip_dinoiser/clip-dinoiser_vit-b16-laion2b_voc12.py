# CLIP-DINOiser (released heads, checkpoints/clip_dinoiser/last.pt) on PASCAL VOC 2012 val, 21
# classes (background rule on).
#   python tools/test.py configs/clip_dinoiser/clip-dinoiser_vit-b16-laion2b_voc12.py
_base_ = ['./_base_/clip-dinoiser_vit-b16.py', '../_base_/datasets/voc12_ov.py']
model = dict(decode_head=dict(class_names='voc', background_rule=True))
