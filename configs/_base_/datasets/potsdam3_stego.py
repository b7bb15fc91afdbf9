# Potsdam-3 in STEGO's protocol: STEGO's `.mat` tiles (from the IIC split),
# 6 classes merged into 3 (roads+cars, buildings+clutter, vegetation). Layout:
#   data/potsdam/imgs/<id>.mat   (key 'img', RGB + IR; IR is dropped)
#   data/potsdam/gt/<id>.mat     (key 'gt', ids 0..5, 255 = unlabelled)
#   data/potsdam/labelled_train.txt, data/potsdam/labelled_test.txt
# Potsdam is not five-cropped upstream: the KNN table is computed on the
# training tiles themselves (tools/stego/precompute_knns.py).
_base_ = './common_stego.py'
dataset_type = 'Potsdam3Dataset'
data_root = 'data/potsdam'
label_mapping = 'potsdam6_to_3'
knn_file = 'data/potsdam/nns/nns_potsdam3_train_none_224.npz'

train_pipeline = [
    dict(type='LoadPotsdamMat'),
    dict(type='STEGORemapLabels', mapping=label_mapping),
    dict(type='STEGOResizeCenterCrop', size=224),
    dict(type='PackSegInputs'),
]
knn_pipeline = [
    dict(type='LoadPotsdamMat', with_label=False),
    dict(type='STEGOResizeCenterCrop', size=224),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadPotsdamMat'),
    dict(type='STEGORemapLabels', mapping=label_mapping),
    dict(type='STEGOResizeCenterCrop', size=320, eval_at_crop=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    dataset=dict(
        knn_file=knn_file,
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='labelled_train.txt',
            data_prefix=dict(img_path='imgs', seg_map_path='gt'),
            pipeline=train_pipeline)))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='labelled_test.txt',
        data_prefix=dict(img_path='imgs', seg_map_path='gt'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(num_classes=3)
test_evaluator = val_evaluator
