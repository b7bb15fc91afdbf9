# MaskCLIP + DINO ViT-B/16 refinement (training-free) on COCO-Stuff 164k val2017, 171 classes.
#   python tools/test.py configs/clip_dinoiser/maskclip-dinorefine_vit-b16-laion2b_coco-stuff164k.py
_base_ = ['./_base_/maskclip-dinorefine_vit-b16.py', '../_base_/datasets/coco-stuff164k_ov.py']
model = dict(decode_head=dict(class_names='coco_stuff', background_rule=False))
