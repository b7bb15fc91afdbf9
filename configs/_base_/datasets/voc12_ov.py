# PASCAL VOC 2012 val (1,449 images), 21 classes with background, for
# open-vocabulary evaluation (CLIP-DINOiser protocol; mmuol): pipeline, batch
# size and metric as ADE20K.
_base_ = './ade20k_ov.py'
dataset_type = 'PascalVOCDataset'
data_root = 'data/VOCdevkit/VOC2012'
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt'))
test_dataloader = val_dataloader
