# Frozen DINO ViT-B/8 (the MaskCut / CutLER backbone) + a training-free
# localizer (set `model.localizer` in the method config); weights:
# 'dino_vitb8' -> dl.fbaipublicfiles.com, loaded at construction.
_base_ = './uol-localizer_dino-vits16.py'
model = dict(
    data_preprocessor=dict(pad_size_divisor=8),
    backbone=dict(arch='dino_vitb8', init_cfg=dict(checkpoint='dino_vitb8')))
