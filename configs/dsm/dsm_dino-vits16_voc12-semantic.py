# Deep Spectral Methods, unsupervised semantic segmentation on PASCAL VOC
# 2012 (val, 1,449 images, 21 classes incl. background). Two steps:
#   1. pseudo-labels (segments -> crop features -> PCA + k-means -> maps):
#        python tools/dsm/semantic_segmentation.py \
#            configs/dsm/dsm_dino-vits16_voc12-semantic.py
#   2. their mIoU after DSM's cluster matching (Hungarian on IoU):
#        python tools/test.py configs/dsm/dsm_dino-vits16_voc12-semantic.py
# data/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation}
_base_ = 'mmseg::_base_/default_runtime.py'
custom_imports = dict(imports=['mmuol.seg'], allow_failed_imports=False)

data_root = 'data/VOCdevkit/VOC2012'
dsm_out_dir = 'work_dirs/dsm_dino-vits16_voc12-semantic'

# Step 1, read by tools/dsm/semantic_segmentation.py. The official pipeline
# clusters every VOC2012 image (img_list=None: all of JPEGImages).
pseudo_labels = dict(
    backbone=dict(
        type='DINOViT',
        arch='dino_vits16',
        frozen=True,
        init_cfg=dict(type='Pretrained', checkpoint='dino_vits16')),
    img_dir=data_root + '/JPEGImages',
    img_list=None,
    out_dir=dsm_out_dir,
    # extract_eigs --K 5 (laplacian, no colour term)
    eigs=dict(
        K=5,
        which_matrix='laplacian',
        image_color_lambda=0.0,
        image_downsample_factor=None,
        solver='auto'),
    # extract_multi_region_segmentations --non_adaptive_num_segments 15,
    # extract_bboxes --num_erode 2 --num_dilate 5
    segments=dict(num_segments=15, num_erode=2, num_dilate=5, seed=0),
    # extract_bbox_clusters --pca_dim 32 --num_clusters 21 --seed 0;
    # cluster_offset=0: cluster 0 shares id 0 with the background, as
    # extract_semantic_segmentations (21 ids -> Hungarian matching).
    clusters=dict(pca_dim=32, num_clusters=21, seed=0, cluster_offset=0),
    # extract_crf_segmentations (optional; maps in <out_dir>/semantic_crf)
    crf=False)

# Step 2: the saved maps are the predictions.
model = dict(type='PrecomputedSegmentor', data_preprocessor=dict(type='SegDataPreProcessor'))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='PackSegInputs',
        meta_keys=('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                   'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label', 'pred_path')),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    # The metric sums confusions: no padded duplicates under DDP.
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type='DSMPseudoLabelDataset',
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        pred_dir=dsm_out_dir + '/semantic',  # '/semantic_crf' with crf=True
        pipeline=test_pipeline))
# DSM's eval.py: Hungarian on the IoU matrix when there are as many ids as
# classes (21), majority vote otherwise; mIoU over all 21 classes.
test_evaluator = dict(
    type='HungarianIoUMetric', matching='max_iou', num_classes=21, num_clusters=21)
test_cfg = dict(type='TestLoop')
