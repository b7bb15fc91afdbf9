# Frozen DINO ViT-B/16 + a training-free localizer (set
# `model.localizer` in the method config); weights: 'dino_vitb16' ->
# dl.fbaipublicfiles.com, loaded at construction.
_base_ = './uol-localizer_dino-vits16.py'
model = dict(
    data_preprocessor=dict(pad_size_divisor=16),
    backbone=dict(arch='dino_vitb16', init_cfg=dict(checkpoint='dino_vitb16')))
