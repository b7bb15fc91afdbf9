# LOST (Simeoni et al., BMVC 2021)
# on COCO20k with a frozen DINO ViT-B/8: CorLoc, training-free.
#   python tools/test.py configs/lost/lost_dino-vitb8_coco20k.py
_base_ = [
    '../_base_/models/uol-localizer_dino-vitb8.py', '../_base_/datasets/coco20k_corloc.py',
    '../_base_/default_runtime_corloc.py'
]

model = dict(localizer=dict(type='LOSTLocalizer', k_patches=100))
