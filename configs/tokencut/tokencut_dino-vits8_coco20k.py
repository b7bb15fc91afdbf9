# TokenCut (Wang et al., CVPR 2022)
# on COCO20k with a frozen DINO ViT-S/8: CorLoc, training-free.
#   python tools/test.py configs/tokencut/tokencut_dino-vits8_coco20k.py
_base_ = [
    '../_base_/models/uol-localizer_dino-vits8.py', '../_base_/datasets/coco20k_corloc.py',
    '../_base_/default_runtime_corloc.py'
]

model = dict(localizer=dict(type='TokenCutLocalizer', tau=0.2, eps=1e-5, binary_graph=True))
