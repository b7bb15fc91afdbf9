# Predictions of a CutLER Cascade Mask R-CNN on the ImageNet train images (the
# images of a pseudo-label file), 30 per image, written as COCO results
# (<outfile_prefix>.segm.json): the input of tools/cutler/self_train_merge.py
# when self-training rounds are run by hand (see README).
#   bash tools/dist_test.sh \
#       configs/cutler/cutler_cascade-mask-rcnn_r50-fpn_imagenet-train-predict.py CKPT 8 \
#       --cfg-options test_evaluator.outfile_prefix=work_dirs/cutler_r0_preds
_base_ = ['./_base_/cascade-mask-rcnn_r50-fpn_zero-shot.py', './_base_/zero-shot_test.py']

data_root = 'data/imagenet/'
model = dict(test_cfg=dict(rcnn=dict(max_per_img=30)))
test_dataloader = dict(
    dataset=dict(
        type='MaskCutDataset',
        data_root=data_root,
        ann_file='annotations/imagenet_train_fixsize480_tau0.15_N3.json',
        data_prefix=dict(img='train/'),
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(
    type='ClassAgnosticCocoMetric',
    metric='segm',
    format_only=True,
    outfile_prefix='work_dirs/cutler_predictions')
