# STEGO, DINO ViT-B/8, Cityscapes-27 (released as cityscapes_vit_base_1.ckpt).
# Loss block of train_config.yml: "Cityscapes 10/3" (w_neg 0.9059,
# w_inter 0.5775, w_intra 1.0, b_neg 0.3136, b_inter 0.1754, b_intra 0.4583).
# The file also keeps an older "Cityscapes" block (0.72 / 0.18 / 0.46,
# 0.25 / 0.20 / 0.25); which one produced the released checkpoint is not
# recorded (tools/model_converters/stego_ckpt_to_mmuol.py prints the
# checkpoint's own values).
#   python tools/stego/precompute_knns.py \
#       configs/stego/stego_dino-vitb8_1xb16-5000it_cityscapes27.py
#   python tools/train.py configs/stego/stego_dino-vitb8_1xb16-5000it_cityscapes27.py
_base_ = [
    './_base_/stego_dino-vitb8.py', '../_base_/datasets/cityscapes27_stego.py',
    './_base_/stego_runtime_1xb16-5000it.py'
]
model = dict(
    decode_head=dict(
        loss_corr=dict(
            neg_inter_weight=0.9058762625226623,
            pos_inter_weight=0.577453483136995,
            pos_intra_weight=1.0,
            neg_inter_shift=0.31361241889448443,
            pos_inter_shift=0.1754346515479633,
            pos_intra_shift=0.45828472207)))
train_dataloader = dict(
    dataset=dict(knn_file='data/cityscapes/nns/nns_dino-vitb8_cityscapes27_train_five_224.npz'))
