# A tiny FCN on a trainable DINOViT (test config).
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmuol.seg'], allow_failed_imports=False)

data_root = 'data/tiny_seg/'
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255, size_divisor=8),
    backbone=dict(type='DINOViT', arch=dict(patch_size=8, embed_dim=48, depth=2, num_heads=3,
                                            img_size=32), frozen=False, init_cfg=None),
    decode_head=dict(type='FCNHead', in_channels=48, channels=16, num_convs=1, concat_input=False,
                     num_classes=2, norm_cfg=None, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                      loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
dataset = dict(type='BaseSegDataset', data_root=data_root, img_suffix='.jpg',
               seg_map_suffix='.png', metainfo=dict(classes=('background', 'object'),
                                                    palette=[[0, 0, 0], [255, 0, 0]]),
               data_prefix=dict(img_path='img_dir', seg_map_path='ann_dir'), pipeline=pipeline)
train_dataloader = dict(batch_size=2, num_workers=0,
                        sampler=dict(type='InfiniteSampler', shuffle=False), dataset=dataset)
test_dataloader = dict(batch_size=1, num_workers=0,
                       sampler=dict(type='DefaultSampler', shuffle=False), dataset=dataset)
val_dataloader = test_dataloader
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
val_evaluator = test_evaluator
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
default_hooks = dict(timer=dict(type='IterTimerHook'),
                     logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
                     param_scheduler=dict(type='ParamSchedulerHook'),
                     checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False),
                     sampler_seed=dict(type='DistSamplerSeedHook'),
                     visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=False)
