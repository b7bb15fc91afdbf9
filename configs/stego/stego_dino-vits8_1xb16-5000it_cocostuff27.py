# STEGO, DINO ViT-S/8, COCO-Stuff-27. Loss block of train_config.yml:
# "Cocostuff27 vit small 1/31/22" (w_neg 0.63, w_inter 0.25, w_intra 0.67,
# b_neg 0.66, b_inter 0.02, b_intra 0.08).
#   python tools/stego/precompute_knns.py configs/stego/stego_dino-vits8_1xb16-5000it_cocostuff27.py
#   python tools/train.py configs/stego/stego_dino-vits8_1xb16-5000it_cocostuff27.py
_base_ = [
    './_base_/stego_dino-vits8.py', '../_base_/datasets/cocostuff27_stego.py',
    './_base_/stego_runtime_1xb16-5000it.py'
]
model = dict(
    decode_head=dict(
        loss_corr=dict(
            neg_inter_weight=0.63,
            pos_inter_weight=0.25,
            pos_intra_weight=0.67,
            neg_inter_shift=0.66,
            pos_inter_shift=0.02,
            pos_intra_shift=0.08)))
train_dataloader = dict(
    dataset=dict(knn_file='data/cocostuff/nns/nns_dino-vits8_cocostuff27_train_five_224.npz'))
