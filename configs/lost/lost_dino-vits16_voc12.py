# LOST (Simeoni et al., BMVC 2021)
# on VOC12 trainval with a frozen DINO ViT-S/16: CorLoc, training-free.
#   python tools/test.py configs/lost/lost_dino-vits16_voc12.py
_base_ = [
    '../_base_/models/uol-localizer_dino-vits16.py', '../_base_/datasets/voc12_corloc.py',
    '../_base_/default_runtime_corloc.py'
]

model = dict(localizer=dict(type='LOSTLocalizer', k_patches=100))
