# CLIP-DINOiser (Wysoczanska et al., ECCV 2024) in MMSegmentation: a frozen
# OpenCLIP ViT-B/16 (LAION-2B) giving MaskCLIP dense features, and the two
# released light heads on its block-9 `ln_2` features: a 3x3 conv whose patch
# correlations guide the pooling of the MaskCLIP features (gamma 0.2) and a
# 1x1 FOUND-like background head (delta 0.99 rule, VOC and COCO-Object only).
# Evaluation as the official code: images in [0, 1] (no Normalize; CLIP's
# mean/std are applied in the backbone), short side 448, slide windows of 448
# with stride 224, mIoU.
_base_ = 'mmseg::_base_/default_runtime.py'
custom_imports = dict(imports=['mmuol.seg'], allow_failed_imports=False)

data_preprocessor = dict(
    type='SegDataPreProcessor',
    # RGB / 255 (the official ImageToTensorV2). Training batches are padded
    # (black) to a multiple of the patch; no padding at test time.
    mean=[0.0, 0.0, 0.0],
    std=[255.0, 255.0, 255.0],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=16)
model = dict(
    type='CLIPDINOiser',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='MaskCLIPBackbone',
        # open_clip downloads the weights to its cache; offline, pass the
        # local open_clip_pytorch_model.bin of
        # laion/CLIP-ViT-B-16-laion2B-s34B-b88K as `pretrained`.
        model_name='ViT-B-16',
        pretrained='laion2b_s34b_b88k',
        intermediate_index=-3,  # feats_idx: ln_2 of block 9 of 12
        text_cache_dir=None),
    decode_head=dict(
        type='DINOiserHead',
        in_channels=768,
        embed_dims=512,
        class_names='voc',
        correlation='learned',
        corr_channels=256,  # in_dim
        corr_kernel=3,
        gamma=0.2,
        background_rule=False,
        delta=0.99,
        fg_threshold=0.5,
        temperature=100.0,
        patch_size=16,
        # checkpoints/last.pt of https://github.com/wysoczanska/clip_dinoiser
        # (or a converted / trained mmseg checkpoint passed to tools/test.py).
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/clip_dinoiser/last.pt')),
    test_cfg=dict(mode='slide', crop_size=(448, 448), stride=(224, 224)))

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Kept so that `tools/test.py --show-dir` works.
    visualization=dict(type='SegVisualizationHook'))
