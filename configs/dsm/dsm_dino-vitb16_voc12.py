# Deep Spectral Methods (Melas-Kyriazi et al., CVPR 2022), object
# localization on VOC12 trainval with a frozen DINO ViT-B/16: CorLoc, training-free.
# The Fiedler vector of the key affinity's normalised Laplacian, > 0,
# reversed if it covers more than half of the image, largest 8-connected
# component, its box.
#   python tools/test.py configs/dsm/dsm_dino-vitb16_voc12.py
_base_ = [
    '../_base_/models/uol-localizer_dino-vitb16.py', '../_base_/datasets/voc12_corloc.py',
    '../_base_/default_runtime_corloc.py'
]

# README: extract_eigs --K 5 (only the Fiedler vector is used)
model = dict(localizer=dict(type='DSMLocalizer', K=5, which_matrix='laplacian', solver='auto'))
