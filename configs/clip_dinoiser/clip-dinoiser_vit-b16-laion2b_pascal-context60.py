# CLIP-DINOiser (released heads, checkpoints/clip_dinoiser/last.pt) on PASCAL Context val, 60
# classes incl. background (plain argmax).
#   python tools/test.py configs/clip_dinoiser/clip-dinoiser_vit-b16-laion2b_pascal-context60.py
_base_ = ['./_base_/clip-dinoiser_vit-b16.py', '../_base_/datasets/pascal-context60_ov.py']
model = dict(decode_head=dict(class_names='context60', background_rule=False))
