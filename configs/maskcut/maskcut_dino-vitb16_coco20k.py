# MaskCut (CutLER, Wang et al., CVPR 2023), up to 3 boxes; CorLoc uses the first
# on COCO20k with a frozen DINO ViT-B/16: CorLoc, training-free.
#   python tools/test.py configs/maskcut/maskcut_dino-vitb16_coco20k.py
_base_ = [
    '../_base_/models/uol-localizer_dino-vitb16.py', '../_base_/datasets/coco20k_corloc.py',
    '../_base_/default_runtime_corloc.py'
]

model = dict(localizer=dict(type='MaskCutLocalizer', num_masks=3, tau=0.15))
