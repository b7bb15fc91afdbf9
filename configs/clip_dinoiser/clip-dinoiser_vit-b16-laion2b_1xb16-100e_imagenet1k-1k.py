# CLIP-DINOiser training (wysoczanska/clip_dinoiser train.py, configs/clip_dinoiser.yaml):
# the two heads on frozen OpenCLIP ViT-B/16 block-9 features, 1,000 ImageNet train images
# drawn with replacement, 448 crops, batch 16, 100 epochs (63 iterations each, 6,300 in
# all), AdamW (weight decay 0.01) lr 5e-5 for the 3x3 correlation head and 1e-2 for the
# background head, x0.1 at iteration 5,000 (stepped per iteration, no warm-up).
# Loss = BCEWithLogits(correlation-head cosines clamped at 0, DINO ViT-B/16 value
#        correlations >= 0.2) + BCEWithLogits(background logits, FOUND > 0.5).
#   python tools/train.py \
#       configs/clip_dinoiser/clip-dinoiser_vit-b16-laion2b_1xb16-100e_imagenet1k-1k.py
# ~3 h on one A5000 upstream. Test a result with any evaluation config:
#   python tools/test.py configs/clip_dinoiser/clip-dinoiser_vit-b16-laion2b_voc12.py \
#       work_dirs/clip-dinoiser_vit-b16-laion2b_1xb16-100e_imagenet1k-1k/epoch_100.pth
_base_ = ['./_base_/clip-dinoiser_vit-b16.py', '../_base_/datasets/imagenet-1k-subset_ov.py']

model = dict(
    # Trained from PyTorch's default conv initialisation, as upstream.
    decode_head=dict(init_cfg=None, loss_weights=dict(corr=1.0, bkg=1.0)),
    train_cfg=dict(
        # DINO ViT-B/16 value correlations, thresholded at gamma = 0.2.
        dino_teacher=dict(
            type='DINOViT',
            arch='dino_vitb16',
            init_cfg=dict(type='Pretrained', checkpoint='dino_vitb16')),
        # FOUND: DINO ViT-S/8 keys + the released 1x1 decoder
        # (data/weights/decoder_weights.pt of https://github.com/valeoai/FOUND).
        found_teacher=dict(
            backbone=dict(
                type='DINOViT',
                arch='dino_vits8',
                init_cfg=dict(type='Pretrained', checkpoint='dino_vits8')),
            decoder='checkpoints/found/decoder_weights.pt'),
        gamma=0.2,
        # The released heads were trained with torchvision 0.13.1, whose tensor resize
        # of FOUND's H/8 map to the H/16 grid has no antialiasing (torchvision >= 0.17
        # antialiases by default, which changes the background target).
        found_antialias=False,
        found_threshold=0.5))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
    # found_lr = 1e-2 = 200 x corr_lr
    paramwise_cfg=dict(custom_keys={'decode_head.bkg_decoder': dict(lr_mult=200.0)}))
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, milestones=[5000], gamma=0.1, begin=0)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=True, interval=10, save_last=True, max_keep_ckpts=3))
log_processor = dict(by_epoch=True)
randomness = dict(seed=0)
