# CutLER self-training round 2, run by hand: round 1's recipe (80k iterations,
# lr 0.005 constant after warm-up, weight decay 1e-4, no DropLoss, copy-paste
# U(0.5, 1.0)) from round 1's weights on annotations/cutler_imagenet1k_train_r2.json, which
#   python tools/cutler/self_train_merge.py <previous json> <predictions.segm.json> \
#       data/imagenet/annotations/cutler_imagenet1k_train_r2.json --score-thr 0.65
# builds from the previous model's predictions on the training images (see README).
#   bash tools/dist_train.sh \
#       configs/cutler/cutler_cascade-mask-rcnn_r50-dino-fpn_8xb2-80k_imagenet-r2.py 8
_base_ = ['./cutler_cascade-mask-rcnn_r50-dino-fpn_8xb2-80k_imagenet-r1.py']

load_from = 'work_dirs/cutler_cascade-mask-rcnn_r50-dino-fpn_8xb2-80k_imagenet-r1/iter_80000.pth'
train_dataloader = dict(
    dataset=dict(dataset=dict(ann_file='annotations/cutler_imagenet1k_train_r2.json')))
