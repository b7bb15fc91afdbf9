# FOUND stage 1, training-free background discovery (Simeoni et al., CVPR 2023)
# on VOC07 trainval with a frozen DINO ViT-B/8: CorLoc, training-free.
#   python tools/test.py configs/found/found-bkg_dino-vitb8_voc07.py
_base_ = [
    '../_base_/models/uol-localizer_dino-vitb8.py', '../_base_/datasets/voc07_corloc.py',
    '../_base_/default_runtime_corloc.py'
]

model = dict(localizer=dict(type='FOUNDBkgLocalizer', tau=0.3))
