# Runtime of FOUND's saliency configs (mmseg side of mmuol): plugin import,
# hooks, and a visualizer that makes `tools/test.py --show-dir` pictures
# legible (prediction filled in one colour, ground-truth outline in another,
# the rest of the image untouched, a legend on a dark box).
_base_ = 'mmseg::_base_/default_runtime.py'
custom_imports = dict(imports=['mmuol.seg'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    # Kept so that `--show` / `--show-dir` work.
    visualization=dict(type='SegVisualizationHook'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SaliencyVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
