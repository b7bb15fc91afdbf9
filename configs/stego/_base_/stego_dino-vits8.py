# STEGO (Hamilton et al., ICLR 2022) in MMSegmentation: a frozen DINO ViT-S/8
# (the 300-epoch checkpoint STEGO's DinoFeaturizer loads), its final-normed
# last-block patch tokens ("feat"), and STEGOHead: linear + nonlinear 1x1
# projection to a 70-d code (Dropout2d 0.1 before each branch, and on the
# features fed to the loss), 27 cluster centroids and a linear probe.
# Values of train_config.yml; the loss block is set by each config.
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # ImageNet mean / std on RGB (DINO's Normalize)
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=8,
    test_cfg=dict(size_divisor=8))
model = dict(
    type='STEGOSegmentor',
    data_preprocessor=data_preprocessor,
    feature='feat',  # dino_feat_type
    backbone=dict(
        type='DINOViT',
        arch='dino_vits8',
        frozen=True,
        init_cfg=dict(type='Pretrained', checkpoint='dino_vits8')),
    decode_head=dict(
        type='STEGOHead',
        in_channels=384,
        channels=70,  # dim
        num_classes=27,
        extra_clusters=0,
        projection='nonlinear',  # projection_type
        dropout_ratio=0.1,
        feature_dropout=True,  # dropout: True
        alpha=2.0,  # cluster_probe(code, 2, log_probs=True) at evaluation
        loss_corr=dict(
            type='STEGOCorrespondenceLoss',
            feature_samples=11,
            neg_samples=5,
            pointwise=True,
            zero_clamp=True,
            stabilize=False,
            loss_weight=1.0),  # correspondence_weight
        cluster_loss_weight=1.0,
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            avg_non_ignore=True,
            loss_name='loss_linear',
            loss_weight=1.0)),
    # validation during training as train_segmentation.py (no flip, no CRF);
    # the evaluation configs switch both on (eval_segmentation.py)
    test_cfg=dict(mode='whole', flip=False, crf=False))
