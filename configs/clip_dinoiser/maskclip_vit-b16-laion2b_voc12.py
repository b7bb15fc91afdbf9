# MaskCLIP alone (training-free) on PASCAL VOC 2012 val, 21 classes incl. background (plain
# argmax).
#   python tools/test.py configs/clip_dinoiser/maskclip_vit-b16-laion2b_voc12.py
_base_ = ['./_base_/maskclip_vit-b16.py', '../_base_/datasets/voc12_ov.py']
model = dict(decode_head=dict(class_names='voc', background_rule=False))
