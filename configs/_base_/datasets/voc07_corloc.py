# PASCAL VOC2007 trainval for single-object discovery (CorLoc), the protocol
# of LOST / TokenCut / FOUND: every image at its original resolution (no
# resize), batch 1, class-agnostic, all objects (difficult and truncated
# included) with LOST's boxes [xmin - 1, ymin - 1, xmax, ymax].
# Layout: data/VOCdevkit/VOC2007/{JPEGImages,Annotations,ImageSets/Main}.
dataset_type = 'VOCCorLocDataset'
data_root = 'data/VOCdevkit/'
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
        ann_file='VOC2007/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        test_mode=True,
        # True: skip and count invalid entries (bad annotation, missing or
        # undecodable image) instead of stopping with an error naming the file.
        skip_invalid=False,
        pipeline=test_pipeline,
        backend_args=backend_args))

# hard=True: LOST's default protocol (all GT boxes); hard=False = --no_hard.
test_evaluator = dict(type='CorLocMetric', iou_thr=0.5, hard=True)
