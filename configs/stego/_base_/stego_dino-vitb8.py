# STEGO with a frozen DINO ViT-B/8 (768-d tokens; the paper's headline
# backbone), otherwise as stego_dino-vits8.py.
_base_ = './stego_dino-vits8.py'
model = dict(
    backbone=dict(arch='dino_vitb8', init_cfg=dict(type='Pretrained', checkpoint='dino_vitb8')),
    decode_head=dict(in_channels=768))
