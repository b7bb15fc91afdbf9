# MaskCut (CutLER, Wang et al., CVPR 2023), up to 3 boxes; CorLoc uses the first
# on VOC12 trainval with a frozen DINO ViT-B/8: CorLoc, training-free.
#   python tools/test.py configs/maskcut/maskcut_dino-vitb8_voc12.py
_base_ = [
    '../_base_/models/uol-localizer_dino-vitb8.py', '../_base_/datasets/voc12_corloc.py',
    '../_base_/default_runtime_corloc.py'
]

model = dict(localizer=dict(type='MaskCutLocalizer', num_masks=3, tau=0.15))
