# ImageNet-1k train (ImageFolder layout data/imagenet/train/<wnid>/*.JPEG).
# CLIP-DINOiser training data: unlabeled images, 448 crops, batch 16.
# Official transforms: Resize(448) (short side), RandomCrop(448),
# RandomHorizontalFlip(0.5), ColorJitter(brightness=0.5).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeShortestEdge', scale=448, max_size=100000),
    dict(type='RandomCrop', crop_size=(448, 448)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomBrightnessJitter', brightness=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='ImageSubsetDataset',
        data_root='data/imagenet',
        data_prefix=dict(img_path='train'),
        # ds_size: 1,000 images drawn with replacement (numpy seed 0)
        num_samples=1000,
        sample_seed=0,
        pipeline=train_pipeline))
