# FOUND on duts-te, 'multi' mode + bilateral solver (all components kept).
_base_ = ['./found_dino-vits8_duts-te.py']
model = dict(test_cfg=dict(saliency_mode='multi', bilateral_solver=True))
