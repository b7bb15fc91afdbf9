# A trained CutLER Mask R-CNN for zero-shot evaluation, as
# ./cascade-mask-rcnn_r50-fpn_zero-shot.py for the cascade model.
_base_ = ['./mask-rcnn_r50-dino-fpn_droploss.py', 'mmdet::_base_/default_runtime.py']
model = dict(
    backbone=dict(norm_cfg=dict(type='BN', requires_grad=True), init_cfg=None),
    neck=dict(norm_cfg=dict(type='BN', requires_grad=True)))
