# CutLER's first-round schedule: 160k iterations at batch 16 (8 GPUs x 2),
# SGD lr 0.01 (momentum 0.9, weight decay 5e-5, none on norm layers), linear
# warm-up over 1000 iterations, lr x 0.02 at 80k, gradient L2 norm clipped at 1,
# mixed precision.
_base_ = ['mmdet::_base_/default_runtime.py']

train_cfg = dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=10**9)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=160000, milestones=[80000], gamma=0.02),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=16)
