# FOUND (Simeoni et al., CVPR 2023): train the 1x1-conv head on DUTS-TR images
# (no labels) with the official recipe of configs/found_DUTS-TR.yaml:
# 224x224 random-scale + Gaussian-blur crops, batch 50, AdamW lr 0.05 (weight
# decay 0.01), StepLR(50, 0.95), 501 optimizer steps (n_iter = 0..500).
# Loss = 1.5 BCE(own prediction refined by the bilateral solver)
#      + BCE(refined background pseudo-mask) for steps < 100
#      + 4.0 BCE(own binarised prediction) from step 100 on.
#   python tools/train.py configs/found/found_dino-vits8_1xb50-500it_duts-tr.py
_base_ = [
    '../_base_/models/found_dino-vits8.py', '../_base_/datasets/duts-tr_saliency.py',
    '../_base_/default_runtime_saliency.py'
]

# The training recipe, stated in full (the code's defaults are the same values).
model = dict(
    # No init_cfg on the head: PyTorch's default conv init, as the official training.
    decode_head=dict(
        # w_bs_loss, background loss, w_self_loss
        loss_weights=dict(bs=1.5, bkg=1.0, self=4.0)),
    train_cfg=dict(
        stop_bkg_loss=100,  # training.stop_bkg_loss: background pseudo-labels for steps 0..99
        background=dict(tau=0.3, head_weights=True),  # found.bkg_th, apply_weights
        # Gated refinement of the pseudo-labels: kept if IoU(mask, refined) > 0.5.
        bilateral_solver=dict(sigma_spatial=16, sigma_luma=16, sigma_chroma=8, iou_gate=0.5)))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.05, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01))
param_scheduler = [dict(type='StepLR', step_size=50, gamma=0.95, by_epoch=False, begin=0)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=501)
default_hooks = dict(
    logger=dict(interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=250, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'))
randomness = dict(seed=0)  # training.seed
