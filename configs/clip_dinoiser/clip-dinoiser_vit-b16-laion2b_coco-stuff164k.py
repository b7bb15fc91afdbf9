# CLIP-DINOiser (released heads, checkpoints/clip_dinoiser/last.pt) on COCO-Stuff 164k val2017,
# 171 classes.
#   python tools/test.py configs/clip_dinoiser/clip-dinoiser_vit-b16-laion2b_coco-stuff164k.py
_base_ = ['./_base_/clip-dinoiser_vit-b16.py', '../_base_/datasets/coco-stuff164k_ov.py']
model = dict(decode_head=dict(class_names='coco_stuff', background_rule=False))
