# Deep Spectral Methods, single-object segmentation on CUB-200-2011 (test
# split, 5,794 images), with DSM's CUB protocol: prediction and ground truth
# centre-cropped to a square, the soft masks binarised at > 127 (as
# `mask > 0.5` on ToTensor'd masks).
#   data/CUB_200_2011/images/<class>/<name>.jpg        (CUB_200_2011.tgz)
#   data/CUB_200_2011/segmentations/<class>/<name>.png (segmentations.tgz)
#   data/CUB_200_2011/test_images.txt: one '<class>/<name>' per line, the
#   images with is_training_image == 0 in train_test_split.txt, e.g.
#     cd data/CUB_200_2011 && join images.txt train_test_split.txt |
#       awk '$3 == 0 {sub(/\.jpg$/, "", $2); print $2}' > test_images.txt
#   python tools/test.py configs/dsm/dsm_dino-vits16_cub.py
_base_ = [
    './_base_/dsm_dino-vits16_single-object.py', '../_base_/datasets/ecssd_saliency.py',
    '../_base_/default_runtime_saliency.py'
]
model = dict(test_cfg=dict(center_crop=True, gt_threshold=127))
val_dataloader = dict(
    dataset=dict(
        type='SaliencyDataset',
        data_root='data/CUB_200_2011',
        ann_file='test_images.txt',
        data_prefix=dict(img_path='images', seg_map_path='segmentations'),
        expected_num_images=5794))
test_dataloader = val_dataloader
# The official code computes IoU / accuracy per image on the cropped maps;
# 'tokencut' is that convention (after the binarisation above).
val_evaluator = dict(type='SaliencyMetric', conventions=('tokencut', ))
test_evaluator = val_evaluator
