# CutLER self-training round 1, run by hand: 80k iterations from the previous
# round's weights on annotations/cutler_imagenet1k_train_r1.json, which
#   python tools/cutler/self_train_merge.py <previous json> <predictions.segm.json> \
#       data/imagenet/annotations/cutler_imagenet1k_train_r1.json --score-thr 0.7
# builds from the previous model's predictions on the training images (see README).
# lr 0.005 constant after warm-up, weight decay 1e-4, no DropLoss, copy-paste U(0.5, 1.0).
#   bash tools/dist_train.sh \
#       configs/cutler/cutler_cascade-mask-rcnn_r50-dino-fpn_8xb2-80k_imagenet-r1.py 8
_base_ = ['./cutler_cascade-mask-rcnn_r50-dino-fpn_8xb2-160k_imagenet.py']

load_from = 'work_dirs/cutler_cascade-mask-rcnn_r50-dino-fpn_8xb2-160k_imagenet/iter_160000.pth'
model = dict(backbone=dict(init_cfg=None), roi_head=dict(drop_loss=None))
train_dataloader = dict(
    dataset=dict(
        dataset=dict(ann_file='annotations/cutler_imagenet1k_train_r1.json'),
        pipeline={{_base_.round_train_dataloader.dataset.pipeline}}))  # copy-paste U(0.5, 1.0)
train_cfg = dict(max_iters=80000)
optim_wrapper = dict(optimizer=dict(lr=0.005, weight_decay=1e-4))
param_scheduler = [dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000)]
