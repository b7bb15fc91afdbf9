# DUTS-TE (5,019 images), released DUTS-TE.zip:
#   data/DUTS-TE/DUTS-TE-Image/*.jpg
#   data/DUTS-TE/DUTS-TE-Mask/*.png   ({0, 255} masks, original resolution)
# Pipeline, batch size and metrics as ECSSD.
_base_ = './ecssd_saliency.py'
val_dataloader = dict(
    dataset=dict(
        type='DUTSDataset',
        data_root='data/DUTS-TE',
        data_prefix=dict(img_path='DUTS-TE-Image', seg_map_path='DUTS-TE-Mask'),
        expected_num_images=5019))
test_dataloader = val_dataloader
