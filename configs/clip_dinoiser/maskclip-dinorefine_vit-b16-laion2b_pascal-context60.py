# MaskCLIP + DINO ViT-B/16 refinement (training-free) on PASCAL Context val, 60 classes incl.
# background (plain argmax).
# python tools/test.py configs/clip_dinoiser/maskclip-dinorefine_vit-b16-laion2b_pascal-context60.py
_base_ = ['./_base_/maskclip-dinorefine_vit-b16.py', '../_base_/datasets/pascal-context60_ov.py']
model = dict(decode_head=dict(class_names='context60', background_rule=False))
