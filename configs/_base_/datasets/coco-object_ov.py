# COCO-Object val2017 (5,000 images): background + 80 things. The
# *_instanceTrainIds.png maps come from the official
# tools/convert_coco_object.py of wysoczanska/clip_dinoiser; they sit next to
# COCO-Stuff's maps, so only the dataset class differs from coco-stuff164k_ov.py.
_base_ = './coco-stuff164k_ov.py'
dataset_type = 'COCOObjectDataset'
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader
