# ECSSD (1,000 images), released images.zip / ground_truth_mask.zip:
#   data/ECSSD/images/*.jpg
#   data/ECSSD/ground_truth_mask/*.png   ({0, 255} masks, original resolution)
# Evaluated one image at a time at full resolution (batch 1), like FOUND.
dataset_type = 'ECSSDDataset'
data_root = 'data/ECSSD'
test_pipeline = [
    dict(type='LoadSaliencyImageFromFile'),
    dict(type='LoadSaliencyAnnotations'),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images', seg_map_path='ground_truth_mask'),
        expected_num_images=1000,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# Both conventions: tokencut_* (GT > 0, beta^2 = 0.3, max of the mean F) and
# found_* (GT == 255, beta^2 = 0.09, mean of per-image max F).
val_evaluator = dict(type='SaliencyMetric', conventions=('tokencut', 'found'))
test_evaluator = val_evaluator
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
