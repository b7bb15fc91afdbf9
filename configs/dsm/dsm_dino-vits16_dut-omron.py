# Deep Spectral Methods, single-object segmentation on DUT-OMRON
# (training-free; IoU / accuracy per image as DSM's object-segmentation
# evaluation = SaliencyMetric's 'tokencut' convention):
#   python tools/test.py configs/dsm/dsm_dino-vits16_dut-omron.py
_base_ = [
    './_base_/dsm_dino-vits16_single-object.py', '../_base_/datasets/dut-omron_saliency.py',
    '../_base_/default_runtime_saliency.py'
]
