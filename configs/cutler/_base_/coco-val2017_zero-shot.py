# COCO val2017 (5k images) in CutLER's zero-shot protocol: class-agnostic box
# and mask AP / AR.
_base_ = ['./zero-shot_test.py']

data_root = 'data/coco/'
ann_file = 'annotations/instances_val2017.json'
test_dataloader = dict(
    dataset=dict(
        type='ClassAgnosticCocoDataset',
        data_root=data_root,
        ann_file=ann_file,
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(
    type='ClassAgnosticCocoMetric', ann_file=data_root + ann_file, metric=['bbox', 'segm'])
