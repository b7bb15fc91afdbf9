# PASCAL Context val (5,105 images), 60 classes incl. background (plain
# argmax). Open-vocabulary evaluation (CLIP-DINOiser protocol); VOC layout
# as voc12_ov.py.
_base_ = './voc12_ov.py'
dataset_type = 'PascalContextDataset'
data_root = 'data/VOCdevkit/VOC2010'
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/val.txt'))
test_dataloader = val_dataloader
