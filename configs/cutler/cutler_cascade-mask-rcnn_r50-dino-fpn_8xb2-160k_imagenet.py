# CutLER (Wang et al., CVPR 2023), first round: class-agnostic Cascade Mask
# R-CNN R50-FPN, DINO ResNet-50 init, DropLoss (IoU 0.01), CutLER copy-paste,
# trained 160k iterations on ImageNet-1K MaskCut pseudo-labels.
#   bash tools/dist_train.sh \
#       configs/cutler/cutler_cascade-mask-rcnn_r50-dino-fpn_8xb2-160k_imagenet.py 8
_base_ = [
    './_base_/cascade-mask-rcnn_r50-dino-fpn_droploss.py', './_base_/imagenet_maskcut.py',
    './_base_/schedule_160k.py'
]
