# STEGO evaluation on Cityscapes-27 (eval_segmentation.py protocol: 320x320
# centre crops, flip averaging, alpha 2, dense CRF, Hungarian on pixel counts).
#   python tools/test.py configs/stego/stego_dino-vitb8_cityscapes27.py \
#       checkpoints/stego/stego_dino-vitb8_cityscapes27.pth
_base_ = './stego_dino-vitb8_1xb16-5000it_cityscapes27.py'
model = dict(test_cfg=dict(flip=True, crf=True))
