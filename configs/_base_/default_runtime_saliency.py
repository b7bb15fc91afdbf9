# Runtime of FOUND's saliency evaluations (mmseg side of mmuol).
_base_ = 'mmseg::_base_/default_runtime.py'
custom_imports = dict(imports=['mmuol.seg'], allow_failed_imports=False)

val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# Keep the visualization hook so that `--show-dir` works.
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=False)
