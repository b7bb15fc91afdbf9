# CutLER zero-shot on COCO val2017 (5k images), class-agnostic box and mask AP / AR.
#   python tools/test.py configs/cutler/cutler_cascade-mask-rcnn_r50-fpn_coco-val2017.py CKPT
_base_ = ['./_base_/cascade-mask-rcnn_r50-fpn_zero-shot.py', './_base_/coco-val2017_zero-shot.py']
