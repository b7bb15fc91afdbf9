# Deep Spectral Methods (Melas-Kyriazi et al., CVPR 2022), single-object
# segmentation in MMSegmentation: a frozen DINO ViT-S/16 (weights loaded at
# construction: 'dino_vits16' -> dl.fbaipublicfiles.com), the Fiedler vector
# of the key affinity's normalised Laplacian thresholded at 0, nearest
# up-sampling and DSM's dense CRF. Training-free.
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # ImageNet mean / std on RGB (DINO's Normalize). No size_divisor: DSM
    # crops the image to a multiple of the patch size instead of padding it.
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=0)
model = dict(
    type='DSMSegmentor',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DINOViT',
        arch='dino_vits16',
        frozen=True,
        init_cfg=dict(type='Pretrained', checkpoint='dino_vits16')),
    # The official recipe (README: extract_eigs --K 2, single-region
    # segmentation, extract_crf_segmentations with its default CRF), stated
    # in full.
    test_cfg=dict(
        K=2,
        which_matrix='laplacian',
        image_color_lambda=0.0,
        image_downsample_factor=None,
        solver='auto',
        crf=True,
        center_crop=False,
        gt_threshold=None))
