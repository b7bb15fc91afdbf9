# Cityscapes val (500 images, 1024x2048 -> 448x896), 19 classes.
# Open-vocabulary evaluation (CLIP-DINOiser protocol): pipeline, batch size
# and metric as ADE20K.
_base_ = './ade20k_ov.py'
dataset_type = 'CityscapesDataset'
data_root = 'data/cityscapes'
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')))
test_dataloader = val_dataloader
