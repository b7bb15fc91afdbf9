# CutLER end to end in one run: 160k iterations on the MaskCut labels with
# DropLoss, then two self-training rounds of 80k iterations each. At the end of
# a round SelfTrainingHook predicts on the ImageNet train images, keeps scores
# >= 0.7 (round 1) / 0.65 (round 2), merges with the previous labels
# (mask IoU < 0.5) into work_dirs/<name>/self_training/pseudo_labels_round{r}.json
# and continues from the current weights with lr 0.005 (constant), weight decay
# 1e-4, no DropLoss and copy-paste ratio U(0.5, 1.0).
#   bash tools/dist_train.sh \
#     configs/cutler/cutler_cascade-mask-rcnn_r50-dino-fpn_8xb2-160k-2x80k-self-train_imagenet.py 8
_base_ = ['./cutler_cascade-mask-rcnn_r50-dino-fpn_8xb2-160k_imagenet.py']

initial_iters = 160000
round_iters = 80000
train_cfg = dict(max_iters=initial_iters + 2 * round_iters)
custom_hooks = [
    dict(
        type='SelfTrainingHook',
        initial_iters=initial_iters,
        round_iters=round_iters,
        score_thrs=(0.7, 0.65),
        mask_iou_thr=0.5,
        max_per_img=30,
        infer_pipeline={{_base_.test_pipeline}},
        round_dataloader={{_base_.round_train_dataloader}},
        round_optim=dict(lr=0.005, weight_decay=1e-4),
        disable_drop_loss=True)
]
