# MaskCLIP (Zhou et al., ECCV 2022) with OpenCLIP ViT-B/16 (LAION-2B) as in
# CLIP-DINOiser's code path: value path of the last block, no refinement, no
# background rule; same evaluation protocol (slide 448 / 224). Training-free.
_base_ = './clip-dinoiser_vit-b16.py'
model = dict(
    decode_head=dict(
        correlation='none', background_rule=False, with_bkg_decoder=False, init_cfg=None))
