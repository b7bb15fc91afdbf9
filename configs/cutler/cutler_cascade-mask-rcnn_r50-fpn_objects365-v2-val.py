# CutLER zero-shot on Objects365 v2 val, class-agnostic box AP / AR (no masks).
#   python tools/test.py configs/cutler/cutler_cascade-mask-rcnn_r50-fpn_objects365-v2-val.py CKPT
_base_ = ['./_base_/cascade-mask-rcnn_r50-fpn_zero-shot.py', './_base_/zero-shot_test.py']

data_root = 'data/Objects365/Obj365_v2/'
ann_file = 'annotations/zhiyuan_objv2_val.json'
test_dataloader = dict(
    dataset=dict(
        type='ClassAgnosticCocoDataset',
        data_root=data_root,
        ann_file=ann_file,
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(type='ClassAgnosticCocoMetric', ann_file=data_root + ann_file, metric='bbox')
