# FOUND on dut-omron, 'multi' mode: metrics on the soft sigmoid map.
_base_ = ['./found_dino-vits8_dut-omron.py']
model = dict(test_cfg=dict(saliency_mode='multi'))
