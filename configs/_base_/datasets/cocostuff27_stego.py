# COCO-Stuff-27 in STEGO's protocol (Hamilton et al., ICLR 2022).
# Layout (STEGO's `cocostuff` folder; labels are the 182-id `stuffthingmaps`):
#   data/cocostuff/images/{train2017,val2017}/*.jpg
#   data/cocostuff/annotations/{train2017,val2017}/*.png    (0..181, 255 = unlabelled)
#   data/cocostuff/curated/train2017/Coco164kFull_Stuff_Coarse.txt    (training list)
#   data/cocostuff/curated/val2017/Coco164kFull_Stuff_Coarse_7.txt    (2,175 val images)
# mmseg's converted labels (`*_labelTrainIds.png`, 171 classes) work too: set
# seg_map_suffix='_labelTrainIds.png' and mapping='cocostuff171_to_27'.
# Training uses the five-crops of tools/stego/five_crop.py and the KNN table of
# tools/stego/precompute_knns.py (commands in configs/stego/README.md).
_base_ = './common_stego.py'
dataset_type = 'COCOStuff27Dataset'
data_root = 'data/cocostuff'
label_mapping = 'cocostuff182_to_27'
five_crop_root = 'data/cocostuff/five_crop_0.5/train2017'
knn_file = 'data/cocostuff/nns/nns_cocostuff27_train_five_224.npz'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='STEGORemapLabels', mapping=label_mapping),
    # STEGO's loader: Resize(224, NEAREST) + CenterCrop(224), images too
    dict(type='STEGOResizeCenterCrop', size=224),
    dict(type='PackSegInputs'),
]
# what tools/stego/precompute_knns.py feeds the backbone
knn_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='STEGOResizeCenterCrop', size=224),
    dict(type='PackSegInputs'),
]
# eval_segmentation.py: Resize(320, NEAREST) + CenterCrop(320), scored at 320x320
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='STEGORemapLabels', mapping=label_mapping),
    dict(type='STEGOResizeCenterCrop', size=320, eval_at_crop=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    dataset=dict(
        knn_file=knn_file,
        dataset=dict(
            type='FiveCropDataset',
            benchmark='cocostuff27',
            data_root=five_crop_root,
            pipeline=train_pipeline)))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='curated/val2017/Coco164kFull_Stuff_Coarse_7.txt',
        data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(num_classes=27)
test_evaluator = val_evaluator
