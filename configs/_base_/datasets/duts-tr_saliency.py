# DUTS-TR (10,553 images) for FOUND's unsupervised training: the masks are
# not used. Layout of the released DUTS-TR.zip:
#   data/DUTS-TR/DUTS-TR-Image/*.jpg   (data/DUTS-TR/DUTS-TR-Mask unused)
# FOUND's own layout (root/DUTS/DUTS-TR-Image) works with
#   --cfg-options train_dataloader.dataset.data_root=ROOT/DUTS
dataset_type = 'DUTSDataset'
data_root = 'data/DUTS-TR'
crop_size = 224
train_pipeline = [
    dict(type='LoadSaliencyImageFromFile'),
    # shorter side -> 224, random scale in [0.1, 3.0], then 224x224
    dict(type='FOUNDRandomScale', size=crop_size, scale_range=(0.1, 3.0)),
    # kernel int(0.1 * 224 // 2 * 2) + 1 = 23, sigma ~ U[0.1, 2], p = 0.5
    dict(type='FOUNDGaussianBlur', prob=0.5, sigma_range=(0.1, 2.0)),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=50,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='DUTS-TR-Image'),
        expected_num_images=10553,
        pipeline=train_pipeline))
