# FOUND on dut-omron, 'single' mode + bilateral solver (sigma 16/16/8) on the
# binarised prediction, kept if IoU > 0.5 (largest component only,
# get_all_cc=False).
_base_ = ['./found_dino-vits8_dut-omron.py']
model = dict(test_cfg=dict(saliency_mode='single', bilateral_solver=True))
