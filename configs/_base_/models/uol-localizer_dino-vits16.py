# Frozen DINO ViT-S/16 + a training-free localizer (set
# `model.localizer` in the method config). The backbone loads the official
# DINO weights at construction ('dino_vits16' -> dl.fbaipublicfiles.com).
model = dict(
    type='UnsupervisedLocalizer',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        # ImageNet mean / std, RGB (DINO's Normalize); zero padding in the
        # normalised space up to a multiple of the patch size.
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=16),
    backbone=dict(
        type='DINOViT',
        arch='dino_vits16',
        frozen=True,
        init_cfg=dict(type='Pretrained', checkpoint='dino_vits16')),
    with_masks=True,
    # Largest patch grid per image (checked before the backbone runs): the
    # localizers build an N x N patch graph (1 GiB in float32 at 128 x 128).
    # Bigger images fail with a message; resize them in the test pipeline.
    max_patches=128 * 128)
