# STEGO evaluation as eval_segmentation.py (the paper's numbers): 320x320
# centre crops, code averaged with the flipped image's, cluster probe
# log-probabilities (alpha 2), dense CRF, Hungarian matching on pixel counts.
# With the released checkpoint (converted, see configs/stego/README.md):
#   python tools/test.py configs/stego/stego_dino-vitb8_cocostuff27.py \
#       checkpoints/stego/stego_dino-vitb8_cocostuff27.pth
_base_ = './stego_dino-vitb8_1xb16-5000it_cocostuff27.py'
model = dict(test_cfg=dict(flip=True, crf=True))
