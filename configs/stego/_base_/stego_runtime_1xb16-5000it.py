# STEGO's training schedule (train_segmentation.py / train_config.yml):
# batch 16, 5000 steps, Adam lr 5e-4 for the projection head and 5e-3 for the
# cluster and linear probes (three Adam optimizers upstream = one Adam with
# per-parameter lr here), no schedule, seed 0, validation every 500 steps
# (upstream: 100), checkpoints every 400 steps keeping the best cluster mIoU.
_base_ = 'mmseg::_base_/default_runtime.py'
custom_imports = dict(imports=['mmuol.seg'], allow_failed_imports=False)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=5e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    paramwise_cfg=dict(custom_keys={
        'decode_head.clusters': dict(lr_mult=10.0),
        'decode_head.conv_seg': dict(lr_mult=10.0),
    }))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=5000, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=400,
        save_best='mIoU',
        rule='greater',
        max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
