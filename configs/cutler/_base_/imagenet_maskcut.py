# ImageNet-1K train images with MaskCut pseudo-labels (CutLER's first round).
#   data/imagenet/train/<wnid>/<file>.JPEG
#   data/imagenet/annotations/imagenet_train_fixsize480_tau0.15_N3.json
# (tools/maskcut/generate.py, or the official file: its swapped image sizes
# are detected and fixed by MaskCutDataset.)
# The self-training inference pass predicts with the zero-shot test pipeline.
_base_ = ['./zero-shot_test.py']

dataset_type = 'MaskCutDataset'
data_root = 'data/imagenet/'
backend_args = None

# Multi-scale training as CutLER: short side in this list, long side <= 1333.
train_scales = [(1333, s) for s in (240, 320, 480, 640, 672, 704, 736, 768, 800, 1024)]
load_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize', scales=train_scales, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
]
maskcut_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    ann_file='annotations/imagenet_train_fixsize480_tau0.15_N3.json',
    data_prefix=dict(img='train/'),
    filter_cfg=dict(filter_empty_gt=True),
    pipeline=load_pipeline,
    backend_args=backend_args)
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='MultiImageMixDataset',
        dataset=maskcut_dataset,
        pipeline=[
            # Copy-paste with down-scaled source images, in the workers.
            dict(type='CutLERCopyPaste', ratio_range=(0.3, 1.0), prob=1.0),
            dict(type='PackDetInputs'),
        ]))

# The self-training rounds paste larger copies (U(0.5, 1.0)).
round_train_dataloader = dict(
    train_dataloader,
    dataset=dict(
        train_dataloader['dataset'],
        pipeline=[
            dict(type='CutLERCopyPaste', ratio_range=(0.5, 1.0), prob=1.0),
            dict(type='PackDetInputs'),
        ]))

# No evaluation during training (test_pipeline, from zero-shot_test.py, serves
# the self-training inference pass).
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
