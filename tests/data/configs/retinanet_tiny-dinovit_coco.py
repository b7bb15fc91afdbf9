# A tiny single-level RetinaNet on a trainable DINOViT (test config).
_base_ = ['mmdet::_base_/default_runtime.py']
custom_imports = dict(imports=['mmuol.det'], allow_failed_imports=False)

data_root = 'data/tiny_coco/'
model = dict(
    type='RetinaNet',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=8),
    backbone=dict(type='DINOViT', arch=dict(patch_size=8, embed_dim=48, depth=2, num_heads=3,
                                            img_size=32), frozen=False, init_cfg=None),
    neck=None,
    bbox_head=dict(
        type='RetinaHead', num_classes=1, in_channels=48, stacked_convs=1, feat_channels=16,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1,
                              ratios=[1.0], strides=[8]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                        target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                                 min_pos_iou=0, ignore_iof_thr=-1),
                   sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1,
                   debug=False),
    test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.0,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=10))

pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),  # sets scale_factor meta
    dict(type='PackDetInputs'),
]
dataset = dict(type='CocoDataset', data_root=data_root, ann_file='annotations.json',
               data_prefix=dict(img='images/'), metainfo=dict(classes=('object', )),
               pipeline=pipeline, filter_cfg=dict(filter_empty_gt=False))
train_dataloader = dict(batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler',
                                                                  shuffle=False),
                        dataset=dataset)
test_dataloader = dict(batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler',
                                                                 shuffle=False),
                       dataset=dict(dataset, test_mode=True))
val_dataloader = test_dataloader
test_evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations.json', metric='bbox')
val_evaluator = test_evaluator
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False),
                     logger=dict(type='LoggerHook', interval=1))
log_processor = dict(by_epoch=False)
