# COCO20k for single-object discovery (CorLoc): the 19,817 COCO train2014
# images of LOST's coco_20k_filenames.txt (shipped in
# mmuol/datasets_files/), GT boxes of instances_train2014.json as
# [x, y, x + w, y + h] rounded, crowd boxes removed; original resolution,
# batch 1, class-agnostic.
# Layout: data/coco/{train2014/, annotations/instances_train2014.json}.
dataset_type = 'COCO20kDataset'
data_root = 'data/coco/'
backend_args = None

test_pipeline = [
    # mmuol's image decoder: PIL without EXIF rotation, as torchvision's
    # loader in LOST (also reads palette, CMYK and 16-bit files correctly).
    dict(type='LoadCorLocImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        # skip_invalid / invalid_reason carry the skipping of bad images to
        # the detector and the metric.
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'skip_invalid',
                   'invalid_reason'))
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2014.json',
        data_prefix=dict(img='train2014/'),
        # `image_list` defaults to the shipped LOST list
        # (mmuol/datasets_files/coco_20k_filenames.txt); None = all images.
        test_mode=True,
        # True: skip and count invalid entries (bad annotation, missing or
        # undecodable image) instead of stopping with an error naming the file.
        skip_invalid=False,
        pipeline=test_pipeline,
        backend_args=backend_args))

test_evaluator = dict(type='CorLocMetric', iou_thr=0.5, hard=True)
