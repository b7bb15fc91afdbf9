# CutLER zero-shot on COCO20k (the 19,817 COCO train2014 images of LOST's list),
# class-agnostic box and mask AP / AR against instances_train2014.json.
#   python tools/test.py configs/cutler/cutler_cascade-mask-rcnn_r50-fpn_coco20k.py CKPT
_base_ = ['./_base_/cascade-mask-rcnn_r50-fpn_zero-shot.py', './_base_/zero-shot_test.py']

data_root = 'data/coco/'
ann_file = 'annotations/instances_train2014.json'
test_dataloader = dict(
    dataset=dict(
        type='COCO20kDataset',
        data_root=data_root,
        ann_file=ann_file,
        data_prefix=dict(img='train2014/'),
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(
    type='ClassAgnosticCocoMetric', ann_file=data_root + ann_file, metric=['bbox', 'segm'])
