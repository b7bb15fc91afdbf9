# Zero-shot class-agnostic evaluation (CutLER's protocol): short side 800,
# long side <= 1333, one image per GPU, ClassAgnosticCocoMetric
# (AP / AR with maxDets 1, 10, 100). Dataset configs set test_dataloader.dataset
# and test_evaluator.
backend_args = None
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False))
test_cfg = dict(type='TestLoop')
