# CutLER zero-shot on LVIS v1 val (COCO val2017 images, 1203 categories merged
# into one), box and mask AP / AR. 300 detections per image as CutLER, of which
# COCOeval counts the best 100 (maxDets 100).
#   python tools/test.py configs/cutler/cutler_cascade-mask-rcnn_r50-fpn_lvis-v1-val.py CKPT
_base_ = ['./_base_/cascade-mask-rcnn_r50-fpn_zero-shot.py', './_base_/zero-shot_test.py']

data_root = 'data/coco/'
ann_file = 'annotations/lvis_v1_val.json'
model = dict(test_cfg=dict(rcnn=dict(max_per_img=300)))
test_dataloader = dict(
    dataset=dict(
        type='ClassAgnosticCocoDataset',
        data_root=data_root,
        ann_file=ann_file,
        data_prefix=dict(img=''),  # file names come from coco_url: val2017/xxx.jpg
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(
    type='ClassAgnosticCocoMetric', ann_file=data_root + ann_file, metric=['bbox', 'segm'])
