# A trained CutLER Cascade Mask R-CNN for zero-shot evaluation: plain BN (the
# SyncBN layers of training hold the same parameters), weights from the
# checkpoint given to tools/test.py. Pair it with a dataset config built on
# ./zero-shot_test.py (the evaluation protocol).
_base_ = ['./cascade-mask-rcnn_r50-dino-fpn_droploss.py', 'mmdet::_base_/default_runtime.py']
model = dict(
    backbone=dict(norm_cfg=dict(type='BN', requires_grad=True), init_cfg=None),
    neck=dict(norm_cfg=dict(type='BN', requires_grad=True)))
