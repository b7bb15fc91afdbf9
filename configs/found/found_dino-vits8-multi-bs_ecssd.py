# FOUND on ecssd, 'multi' mode + bilateral solver (all components kept).
_base_ = ['./found_dino-vits8_ecssd.py']
model = dict(test_cfg=dict(saliency_mode='multi', bilateral_solver=True))
