# CutLER's Mask R-CNN variant, first round: class-agnostic Mask R-CNN R50-FPN,
# DINO ResNet-50 init, DropLoss, copy-paste; 160k iterations, lr x 0.1 at 80k,
# no mixed precision (CutLER-ImageNet/mask_rcnn_R_50_FPN.yaml).
#   bash tools/dist_train.sh configs/cutler/cutler_mask-rcnn_r50-dino-fpn_8xb2-160k_imagenet.py 8
_base_ = [
    './_base_/mask-rcnn_r50-dino-fpn_droploss.py', './_base_/imagenet_maskcut.py',
    './_base_/schedule_160k.py'
]

optim_wrapper = dict(
    type='OptimWrapper',
    _delete_=True,
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=160000, milestones=[80000], gamma=0.1),
]
