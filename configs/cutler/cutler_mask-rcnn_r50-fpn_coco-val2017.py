# CutLER's Mask R-CNN variant, zero-shot on COCO val2017, box and mask AP / AR.
#   python tools/test.py configs/cutler/cutler_mask-rcnn_r50-fpn_coco-val2017.py CKPT
_base_ = ['./_base_/mask-rcnn_r50-fpn_zero-shot.py', './_base_/coco-val2017_zero-shot.py']
