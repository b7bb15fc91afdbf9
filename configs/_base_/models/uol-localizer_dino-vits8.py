# Frozen DINO ViT-S/8, the 300-epoch checkpoint used by LOST, TokenCut and FOUND + a training-free localizer (set
# `model.localizer` in the method config). The backbone loads the official
# DINO weights at construction ('dino_vits8' -> dl.fbaipublicfiles.com).
model = dict(
    type='UnsupervisedLocalizer',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        # ImageNet mean / std, RGB (DINO's Normalize); zero padding in the
        # normalised space up to a multiple of the patch size.
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=8),
    backbone=dict(
        type='DINOViT',
        arch='dino_vits8',
        frozen=True,
        init_cfg=dict(type='Pretrained', checkpoint='dino_vits8')),
    with_masks=True)
