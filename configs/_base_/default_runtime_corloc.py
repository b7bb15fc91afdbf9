# Runtime of the training-free CorLoc evaluations (mmdet side of mmuol).
# Test only: `python tools/test.py CONFIG` (no checkpoint needed).
_base_ = 'mmdet::_base_/default_runtime.py'

custom_imports = dict(imports=['mmuol.det'], allow_failed_imports=False)

test_cfg = dict(type='TestLoop')

# Keep the visualization hook so that `--show-dir` works; `score_thr=0`
# draws every box (TokenCut / FOUND-head scores are confidences < 1). The
# CorLoc hook draws what the pipeline decoded and leaves out skipped images.
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    visualization=dict(type='CorLocVisualizationHook', score_thr=0.0))

# The model is frozen: DistributedDataParallel refuses a module without
# trainable parameters, this wrapper only moves such modules to the device.
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel')
