# "MaskCLIP + DINO refinement" (CLIP-DINOiser's DinoCLIP): MaskCLIP features
# pooled with the correlations of a frozen DINO ViT-B/16's last-block value
# features (gamma 0.2): two backbones at inference, training-free.
_base_ = './clip-dinoiser_vit-b16.py'
model = dict(
    backbone=dict(
        guide=dict(
            type='DINOViT',
            arch='dino_vitb16',
            init_cfg=dict(type='Pretrained', checkpoint='dino_vitb16'))),
    decode_head=dict(
        correlation='dino', background_rule=False, with_bkg_decoder=False, init_cfg=None))
