# PASCAL VOC 2012 val, the 20 object classes: background pixels are ignored
# (reduce_zero_label). Open-vocabulary evaluation (CLIP-DINOiser protocol);
# images and labels as voc12_ov.py.
_base_ = './voc12_ov.py'
dataset_type = 'PascalVOC20Dataset'
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader
