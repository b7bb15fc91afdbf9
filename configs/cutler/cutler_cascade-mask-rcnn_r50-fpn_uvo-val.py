# CutLER zero-shot on UVO val (dense video frames, COCO-format json), box and
# mask AP / AR. CutLER evaluates its val_sparse_cleaned_cls_agnostic.json; any
# UVO COCO-format json works (all categories are merged).
#   python tools/test.py configs/cutler/cutler_cascade-mask-rcnn_r50-fpn_uvo-val.py CKPT
_base_ = ['./_base_/cascade-mask-rcnn_r50-fpn_zero-shot.py', './_base_/zero-shot_test.py']

data_root = 'data/uvo/'
ann_file = 'annotations/val_sparse_cleaned_cls_agnostic.json'
test_dataloader = dict(
    dataset=dict(
        type='ClassAgnosticCocoDataset',
        data_root=data_root,
        ann_file=ann_file,
        data_prefix=dict(img='all_UVO_frames/'),
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(
    type='ClassAgnosticCocoMetric', ann_file=data_root + ann_file, metric=['bbox', 'segm'])
