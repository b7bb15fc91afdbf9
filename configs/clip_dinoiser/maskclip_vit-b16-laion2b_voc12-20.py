# MaskCLIP alone (training-free) on PASCAL VOC 2012 val, 20 classes (background ignored).
#   python tools/test.py configs/clip_dinoiser/maskclip_vit-b16-laion2b_voc12-20.py
_base_ = ['./_base_/maskclip_vit-b16.py', '../_base_/datasets/voc12-20_ov.py']
model = dict(decode_head=dict(class_names='voc20', background_rule=False))
