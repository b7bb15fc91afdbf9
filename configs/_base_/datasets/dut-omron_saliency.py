# DUT-OMRON (5,168 images), released DUT-OMRON-image.zip +
# DUT-OMRON-gt-pixelwise.zip:
#   data/DUT-OMRON/DUT-OMRON-image/*.jpg
#   data/DUT-OMRON/pixelwiseGT-new-PNG/*.png
#   ({0, 255} masks, original resolution)
# Evaluated one image at a time at full resolution (batch 1), like FOUND.
dataset_type = 'DUTOMRONDataset'
data_root = 'data/DUT-OMRON'
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
        data_prefix=dict(
            img_path='DUT-OMRON-image', seg_map_path='pixelwiseGT-new-PNG'),
        expected_num_images=5168,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# Both conventions: tokencut_* (GT > 0, beta^2 = 0.3, max of the mean F) and
# found_* (GT == 255, beta^2 = 0.09, mean of per-image max F).
val_evaluator = dict(type='SaliencyMetric', conventions=('tokencut', 'found'))
test_evaluator = val_evaluator
