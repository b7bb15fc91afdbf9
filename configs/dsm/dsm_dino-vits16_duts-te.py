# Deep Spectral Methods, single-object segmentation on DUTS-TE
# (training-free; IoU / accuracy per image as DSM's object-segmentation
# evaluation = SaliencyMetric's 'tokencut' convention):
#   python tools/test.py configs/dsm/dsm_dino-vits16_duts-te.py
_base_ = [
    './_base_/dsm_dino-vits16_single-object.py', '../_base_/datasets/duts-te_saliency.py',
    '../_base_/default_runtime_saliency.py'
]
