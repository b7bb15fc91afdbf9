# Optional self-training on DSM's VOC2012 pseudo-labels (DSM's
# semantic-segmentation/train.py trains a segmentation network on the
# pseudo-labels; this config does it with an mmseg EncoderDecoder: frozen
# DINO ViT-S/16 + FCN head, 4k iterations, AdamW lr 5e-3, linear decay).
# The targets are cluster ids, so the model predicts cluster ids and is
# evaluated with the same Hungarian matching.
#   1. python tools/dsm/semantic_segmentation.py \
#          configs/dsm/dsm_dino-vits16_voc12-semantic.py
#   2. python tools/train.py configs/dsm/dsm_dino-vits16-fcn_1xb16-4k_voc12-pseudo.py
_base_ = 'mmseg::_base_/default_runtime.py'
custom_imports = dict(imports=['mmuol.seg'], allow_failed_imports=False)

data_root = 'data/VOCdevkit/VOC2012'
# <pseudo_labels.out_dir>/semantic of the semantic config.
pseudo_label_dir = 'work_dirs/dsm_dino-vits16_voc12-semantic/semantic'
crop_size = (320, 320)

model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size=crop_size),
    backbone=dict(
        type='DINOViT',
        arch='dino_vits16',
        frozen=True,
        init_cfg=dict(type='Pretrained', checkpoint='dino_vits16')),
    decode_head=dict(
        type='FCNHead',
        in_channels=384,
        channels=384,
        num_convs=1,
        concat_input=False,
        num_classes=21,
        dropout_ratio=0.1,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='ResizeLabelToImage'),  # patch-level pseudo-labels -> image size
    dict(type='RandomResize', scale=(512, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='PascalVOCDataset',
        data_root='',
        # DSM trains on every VOC2012 image outside val (pseudo-labels only).
        data_prefix=dict(img_path=data_root + '/JPEGImages', seg_map_path=pseudo_label_dir),
        ann_file=data_root + '/ImageSets/Segmentation/train.txt',
        pipeline=train_pipeline))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type='PascalVOCDataset',
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='HungarianIoUMetric', matching='max_iou', num_classes=21, num_clusters=21)
test_evaluator = val_evaluator

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=5e-3, weight_decay=1e-8))
param_scheduler = [dict(type='PolyLR', power=1.0, eta_min=0.0, begin=0, end=4000, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4000, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000))
log_processor = dict(by_epoch=False)
