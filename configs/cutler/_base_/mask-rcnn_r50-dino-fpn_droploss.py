# CutLER's Mask R-CNN variant (CutLER-ImageNet/mask_rcnn_R_50_FPN.yaml):
# class-agnostic Mask R-CNN R50-FPN with DropLoss, DINO ResNet-50 init.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']

custom_imports = dict(imports=['mmuol.det'], allow_failed_imports=False)

dino_resnet50 = 'https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth'  # noqa: E501
norm_cfg = dict(type='SyncBN', requires_grad=True)

model = dict(
    backbone=dict(
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint=dino_resnet50)),
    neck=dict(norm_cfg=norm_cfg),
    rpn_head=dict(loss_bbox=dict(_delete_=True, type='L1Loss', loss_weight=1.0)),
    roi_head=dict(
        type='DropLossStandardRoIHead',
        drop_loss=dict(type='DropLoss', iou_thr=0.01),
        bbox_head=dict(num_classes=1, reg_class_agnostic=True),
        mask_head=dict(num_classes=1)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=2000, max_per_img=4000, nms=dict(type='nms',
                                                                   iou_threshold=0.65))),
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.65)),
        rcnn=dict(
            score_thr=0.0,
            nms=dict(type='nms', iou_threshold=0.5),
            max_per_img=100,
            mask_thr_binary=0.5)))
