# CutLER's detector: class-agnostic Cascade Mask R-CNN R50-FPN with DropLoss
# (CutLER-ImageNet/cascade_mask_rcnn_R_50_FPN.yaml in the official repository).
# Backbone initialised from the self-supervised DINO ResNet-50, whose
# torchvision key layout is mmdet's ResNet layout (no conversion needed).
_base_ = ['mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py']

custom_imports = dict(imports=['mmuol.det'], allow_failed_imports=False)

dino_resnet50 = 'https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth'  # noqa: E501
norm_cfg = dict(type='SyncBN', requires_grad=True)

_bbox_head = dict(
    type='Shared2FCBBoxHead',
    in_channels=256,
    fc_out_channels=1024,
    roi_feat_size=7,
    num_classes=1,
    reg_class_agnostic=True,
    loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    # detectron2's smooth-L1 with beta 0 is the L1 loss.
    loss_bbox=dict(type='L1Loss', loss_weight=1.0))

model = dict(
    backbone=dict(
        frozen_stages=-1,  # FREEZE_AT 0
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',  # stride in the 3x3 conv (STRIDE_IN_1X1 False)
        init_cfg=dict(type='Pretrained', checkpoint=dino_resnet50)),
    neck=dict(norm_cfg=norm_cfg),
    rpn_head=dict(loss_bbox=dict(_delete_=True, type='L1Loss', loss_weight=1.0)),
    roi_head=dict(
        type='DropLossCascadeRoIHead',
        drop_loss=dict(type='DropLoss', iou_thr=0.01),
        # One head per cascade stage; only the box-delta std devs differ.
        bbox_head=[
            dict(
                _bbox_head,
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds))
            for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
        ],
        mask_head=dict(num_classes=1)),
    train_cfg=dict(
        # RPN: 4000 proposals after NMS 0.65 in training (CutLER).
        rpn_proposal=dict(nms_pre=2000, max_per_img=4000, nms=dict(type='nms',
                                                                   iou_threshold=0.65))),
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.65)),
        rcnn=dict(
            score_thr=0.0,
            nms=dict(type='nms', iou_threshold=0.5),
            max_per_img=100,
            mask_thr_binary=0.5)))
