# VOC-layout datasets (XML annotations), class-agnostic box AP / AR: the ground
# truth comes from the dataset (PackDetInputs carries 'instances'); difficult
# objects are ignored (COCO crowd).
_base_ = ['./cascade-mask-rcnn_r50-fpn_zero-shot.py', './zero-shot_test.py']

voc_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'instances')),
]
# One image set; a dataset config adds data_root, data_prefix and ann_file, and
# concatenates the sets it evaluates.
voc_dataset = dict(type='ClassAgnosticVOCDataset', test_mode=True, pipeline=voc_pipeline)
test_evaluator = dict(type='ClassAgnosticCocoMetric', ann_file=None, metric='bbox')
