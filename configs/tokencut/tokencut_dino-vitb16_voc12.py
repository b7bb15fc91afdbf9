# TokenCut (Wang et al., CVPR 2022)
# on VOC12 trainval with a frozen DINO ViT-B/16: CorLoc, training-free.
#   python tools/test.py configs/tokencut/tokencut_dino-vitb16_voc12.py
_base_ = [
    '../_base_/models/uol-localizer_dino-vitb16.py', '../_base_/datasets/voc12_corloc.py',
    '../_base_/default_runtime_corloc.py'
]

model = dict(localizer=dict(type='TokenCutLocalizer', tau=0.2, eps=1e-5, binary_graph=True))
