# DINO-seg, LOST's attention baseline (head 4, 60 % of the mass)
# on VOC12 trainval with a frozen DINO ViT-B/16: CorLoc, training-free.
#   python tools/test.py configs/dinoseg/dinoseg_dino-vitb16_voc12.py
_base_ = [
    '../_base_/models/uol-localizer_dino-vitb16.py', '../_base_/datasets/voc12_corloc.py',
    '../_base_/default_runtime_corloc.py'
]

model = dict(localizer=dict(type='DINOSegLocalizer', head=4, keep=0.6))
