# FOUND with its trained 1x1-conv head (Simeoni et al., CVPR 2023)
# on VOC12 trainval with a frozen DINO ViT-S/8: CorLoc with the released head.
#   python tools/test.py configs/found/found_dino-vits8_voc12.py
_base_ = [
    '../_base_/models/uol-localizer_dino-vits8.py', '../_base_/datasets/voc12_corloc.py',
    '../_base_/default_runtime_corloc.py'
]

# The released FOUND decoder (385 parameters, trained on DUTS-TR with ViT-S/8
# keys): download data/weights/decoder_weights.pt from
# https://github.com/valeoai/FOUND to checkpoints/found/decoder_weights.pt
# (or --cfg-options model.localizer.decoder_checkpoint=PATH).
model = dict(
    localizer=dict(
        type='FOUNDHeadLocalizer',
        in_channels=384,  # ViT-S keys
        decoder_checkpoint='checkpoints/found/decoder_weights.pt',
        threshold=0.5))
