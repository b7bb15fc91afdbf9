# STEGO's data protocol (Hamilton et al., ICLR 2022), shared by the *_stego.py
# datasets, which set the images, label mapping, pipelines and KNN table:
# training on (image, KNN partner) pairs, batch 16; evaluation batch 8 with
# Hungarian matching of the cluster ids on pixel counts.
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='STEGOKNNPairDataset', num_neighbors=7))
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    # round_up=False: the metric sums confusions, a padded duplicate would count twice
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='HungarianIoUMetric', matching='max_pixels')
test_evaluator = val_evaluator
