# PASCAL Context val, 59 classes (background ignored, reduce_zero_label).
# Open-vocabulary evaluation (CLIP-DINOiser protocol); images and labels as
# pascal-context60_ov.py.
_base_ = './pascal-context60_ov.py'
dataset_type = 'PascalContextDataset59'
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader
