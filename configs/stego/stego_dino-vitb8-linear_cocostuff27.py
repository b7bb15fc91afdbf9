# STEGO's linear-probe evaluation (supervised probe on the frozen code; the
# "linear" numbers): class predictions of the linear probe, no matching.
#   python tools/test.py configs/stego/stego_dino-vitb8-linear_cocostuff27.py \
#       checkpoints/stego/stego_dino-vitb8_cocostuff27.pth
_base_ = './stego_dino-vitb8_cocostuff27.py'
model = dict(decode_head=dict(predict_with='linear'))
val_evaluator = dict(type='HungarianIoUMetric', num_classes=27, matching='none')
test_evaluator = val_evaluator
