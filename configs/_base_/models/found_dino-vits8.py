# FOUND (Simeoni et al., CVPR 2023) in MMSegmentation: a frozen DINO ViT-S/8
# (the 300-epoch checkpoint FOUND loads) and a 1x1-conv head (385 parameters)
# on the last-block patch keys. The backbone loads the official DINO weights
# at construction ('dino_vits8' -> dl.fbaipublicfiles.com).
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # ImageNet mean / std on RGB (DINO's Normalize); zero padding in the
    # normalised space (= mean colour) up to a multiple of the patch size.
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=0,
    size_divisor=8,
    test_cfg=dict(size_divisor=8))
model = dict(
    type='FOUNDSegmentor',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DINOViT',
        arch='dino_vits8',
        frozen=True,
        init_cfg=dict(type='Pretrained', checkpoint='dino_vits8')),
    decode_head=dict(type='FOUNDHead', in_channels=384, patch_size=8,
                     threshold=0.5),  # sigmoid > 0.5: predictions (and training masks)
    feature='k',  # found.feats
    # No train_cfg here: the training recipe is in
    # configs/found/found_dino-vits8_1xb50-500it_duts-tr.py.
    # FOUND's evaluation (evaluation/saliency.py), stated in full.
    test_cfg=dict(
        mode='whole',
        saliency_mode='single',  # 'single' | 'multi'
        bilateral_solver=False,
        bilateral_solver_cfg=dict(sigma_spatial=16, sigma_luma=16, sigma_chroma=8, iou_gate=0.5)))
