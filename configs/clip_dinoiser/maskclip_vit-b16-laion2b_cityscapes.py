# MaskCLIP alone (training-free) on Cityscapes val, 19 classes.
#   python tools/test.py configs/clip_dinoiser/maskclip_vit-b16-laion2b_cityscapes.py
_base_ = ['./_base_/maskclip_vit-b16.py', '../_base_/datasets/cityscapes_ov.py']
model = dict(decode_head=dict(class_names='cityscapes', background_rule=False))
