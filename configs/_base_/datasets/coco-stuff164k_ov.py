# COCO-Stuff 164k val2017 (5,000 images), 171 classes, *_labelTrainIds.png.
# Open-vocabulary evaluation (CLIP-DINOiser protocol): pipeline, batch size
# and metric as ADE20K.
_base_ = './ade20k_ov.py'
dataset_type = 'COCOStuffDataset'
data_root = 'data/coco_stuff164k'
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017')))
test_dataloader = val_dataloader
