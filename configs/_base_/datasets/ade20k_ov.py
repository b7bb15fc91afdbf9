# ADE20K val (2,000 images), 150 classes (reduce_zero_label).
# Open-vocabulary evaluation (CLIP-DINOiser protocol), shared by every *_ov.py
# evaluation set: they inherit this file and set only their dataset.
dataset_type = 'ADE20KDataset'
data_root = 'data/ADEChallengeData2016'
test_pipeline = [
    dict(type='LoadImageFromFile'),  # colour: grayscale files become 3 channels
    # keep ratio, short side 448 (long side <= 2048), cv2 bilinear
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='LoadAnnotations'),  # reduce_zero_label from the dataset
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
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
