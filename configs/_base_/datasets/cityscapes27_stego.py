# Cityscapes-27 in STEGO's protocol: the 27 classes of label ids 7..33
# (`*_gtFine_labelIds.png` minus 7, not the 19 train ids). Layout:
#   data/cityscapes/leftImg8bit/{train,val}/<city>/*_leftImg8bit.png
#   data/cityscapes/gtFine/{train,val}/<city>/*_gtFine_labelIds.png
# Training uses the five-crops of the `train` fine split (tools/stego/five_crop.py
# with --img-suffix _leftImg8bit.png --seg-suffix _gtFine_labelIds.png) and the
# KNN table of tools/stego/precompute_knns.py; evaluation uses `val` (500 images).
# Pipelines, KNN pairs and metric as COCO-Stuff-27, with this label mapping.
_base_ = './cocostuff27_stego.py'
dataset_type = 'Cityscapes27Dataset'
data_root = 'data/cityscapes'
label_mapping = 'cityscapes_labelids_to_27'
five_crop_root = 'data/cityscapes/five_crop_0.5/train'
knn_file = 'data/cityscapes/nns/nns_cityscapes27_train_five_224.npz'

# COCO-Stuff-27's pipelines with this dataset's label mapping
train_pipeline = [
    dict(step, mapping=label_mapping) if 'mapping' in step else step
    for step in _base_.train_pipeline
]
test_pipeline = [
    dict(step, mapping=label_mapping) if 'mapping' in step else step
    for step in _base_.test_pipeline
]
train_dataloader = dict(
    dataset=dict(
        knn_file=knn_file,
        dataset=dict(benchmark='cityscapes27', data_root=five_crop_root, pipeline=train_pipeline)))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,  # no ann_file: every image of the split
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
