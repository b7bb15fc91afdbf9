# FOUND on duts-te, 'multi' mode: metrics on the soft sigmoid map.
_base_ = ['./found_dino-vits8_duts-te.py']
model = dict(test_cfg=dict(saliency_mode='multi'))
