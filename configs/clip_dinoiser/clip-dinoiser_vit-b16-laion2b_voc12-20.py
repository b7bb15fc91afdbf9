# CLIP-DINOiser (released heads, checkpoints/clip_dinoiser/last.pt) on PASCAL VOC 2012 val, 20
# classes (background ignored).
#   python tools/test.py configs/clip_dinoiser/clip-dinoiser_vit-b16-laion2b_voc12-20.py
_base_ = ['./_base_/clip-dinoiser_vit-b16.py', '../_base_/datasets/voc12-20_ov.py']
model = dict(decode_head=dict(class_names='voc20', background_rule=False))
