# DINO-seg, LOST's attention baseline (head 4, 60 % of the mass)
# on COCO20k with a frozen DINO ViT-B/8: CorLoc, training-free.
#   python tools/test.py configs/dinoseg/dinoseg_dino-vitb8_coco20k.py
_base_ = [
    '../_base_/models/uol-localizer_dino-vitb8.py', '../_base_/datasets/coco20k_corloc.py',
    '../_base_/default_runtime_corloc.py'
]

model = dict(localizer=dict(type='DINOSegLocalizer', head=4, keep=0.6))
