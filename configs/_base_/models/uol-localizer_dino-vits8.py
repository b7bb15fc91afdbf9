# Frozen DINO ViT-S/8 (the 300-epoch checkpoint LOST, TokenCut and FOUND use)
# + a training-free localizer (set `model.localizer` in the method config);
# weights: 'dino_vits8' -> dl.fbaipublicfiles.com, loaded at construction.
_base_ = './uol-localizer_dino-vits16.py'
model = dict(
    data_preprocessor=dict(pad_size_divisor=8),
    backbone=dict(arch='dino_vits8', init_cfg=dict(checkpoint='dino_vits8')))
