# STEGO, DINO ViT-B/8, COCO-Stuff-27 (the paper's headline model; released as
# cocostuff27_vit_base_5.ckpt). Loss block of train_config.yml:
# "Cocostuff27 10/3 vit_base" (w_neg 0.1538, w_inter 1.0, w_intra 0.1,
# b_neg 1.0, b_inter 0.2, b_intra 0.12).
#   python tools/stego/five_crop.py ...            (configs/stego/README.md)
#   python tools/stego/precompute_knns.py configs/stego/stego_dino-vitb8_1xb16-5000it_cocostuff27.py
#   python tools/train.py configs/stego/stego_dino-vitb8_1xb16-5000it_cocostuff27.py
_base_ = [
    './_base_/stego_dino-vitb8.py', '../_base_/datasets/cocostuff27_stego.py',
    './_base_/stego_runtime_1xb16-5000it.py'
]
model = dict(
    decode_head=dict(
        loss_corr=dict(
            neg_inter_weight=0.1538476246415498,
            pos_inter_weight=1.0,
            pos_intra_weight=0.1,
            neg_inter_shift=1.0,
            pos_inter_shift=0.2,
            pos_intra_shift=0.12)))
# the KNN table depends on the backbone
train_dataloader = dict(
    dataset=dict(knn_file='data/cocostuff/nns/nns_dino-vitb8_cocostuff27_train_five_224.npz'))
