# MaskCLIP + DINO ViT-B/16 refinement (training-free) on COCO-Object val2017, 81 classes
# incl. background (plain argmax).
#   python tools/test.py configs/clip_dinoiser/maskclip-dinorefine_vit-b16-laion2b_coco-object.py
_base_ = ['./_base_/maskclip-dinorefine_vit-b16.py', '../_base_/datasets/coco-object_ov.py']
model = dict(decode_head=dict(class_names='coco_object', background_rule=False))
