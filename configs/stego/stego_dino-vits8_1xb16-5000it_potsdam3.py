# STEGO, DINO ViT-S/8, Potsdam-3 (3 classes). Loss block of train_config.yml:
# "Potsdam vit small 1/31/22" (w_neg 0.63, w_inter 0.25, w_intra 0.67,
# b_neg 0.46, b_inter 0.02, b_intra 0.08).
#   python tools/stego/precompute_knns.py configs/stego/stego_dino-vits8_1xb16-5000it_potsdam3.py
#   python tools/train.py configs/stego/stego_dino-vits8_1xb16-5000it_potsdam3.py
_base_ = [
    './_base_/stego_dino-vits8.py', '../_base_/datasets/potsdam3_stego.py',
    './_base_/stego_runtime_1xb16-5000it.py'
]
model = dict(
    decode_head=dict(
        num_classes=3,
        loss_corr=dict(
            neg_inter_weight=0.63,
            pos_inter_weight=0.25,
            pos_intra_weight=0.67,
            neg_inter_shift=0.46,
            pos_inter_shift=0.02,
            pos_intra_shift=0.08)))
train_dataloader = dict(
    dataset=dict(knn_file='data/potsdam/nns/nns_dino-vits8_potsdam3_train_none_224.npz'))
