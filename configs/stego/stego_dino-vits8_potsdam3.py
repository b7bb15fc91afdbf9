# STEGO evaluation on Potsdam-3 (eval_segmentation.py protocol: 320x320,
# flip averaging, alpha 2, dense CRF, Hungarian on pixel counts). The released
# potsdam_test.ckpt does not say its backbone in its name: the converter
# prints the checkpoint's model_type; use arch='dino_vitb8' (in_channels=768)
# if it reports vit_base.
#   python tools/test.py configs/stego/stego_dino-vits8_potsdam3.py \
#       checkpoints/stego/stego_potsdam3.pth
_base_ = './stego_dino-vits8_1xb16-5000it_potsdam3.py'
model = dict(test_cfg=dict(flip=True, crf=True))
