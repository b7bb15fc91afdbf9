# FOUND saliency evaluation on dut-omron ('single' mode, no bilateral solver):
# logits x8 bilinear, sigmoid, binarised at 0.5, largest non-background
# component. With the released decoder:
#   python tools/test.py configs/found/found_dino-vits8_dut-omron.py
# or with a trained / converted checkpoint:
#   python tools/test.py configs/found/found_dino-vits8_dut-omron.py CKPT
_base_ = [
    '../_base_/models/found_dino-vits8.py', '../_base_/datasets/dut-omron_saliency.py',
    '../_base_/default_runtime_saliency.py'
]

# The released FOUND decoder (385 parameters): download
# data/weights/decoder_weights.pt from https://github.com/valeoai/FOUND to
# checkpoints/found/decoder_weights.pt (or pass a checkpoint to test.py).
model = dict(
    decode_head=dict(
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/found/decoder_weights.pt')))
