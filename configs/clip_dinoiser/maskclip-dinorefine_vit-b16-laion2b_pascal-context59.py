# MaskCLIP + DINO ViT-B/16 refinement (training-free) on PASCAL Context val, 59 classes.
# python tools/test.py configs/clip_dinoiser/maskclip-dinorefine_vit-b16-laion2b_pascal-context59.py
_base_ = ['./_base_/maskclip-dinorefine_vit-b16.py', '../_base_/datasets/pascal-context59_ov.py']
model = dict(decode_head=dict(class_names='context59', background_rule=False))
