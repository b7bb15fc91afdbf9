# DUT-OMRON (5,168 images), released DUT-OMRON-image.zip +
# DUT-OMRON-gt-pixelwise.zip:
#   data/DUT-OMRON/DUT-OMRON-image/*.jpg
#   data/DUT-OMRON/pixelwiseGT-new-PNG/*.png   ({0, 255} masks, original resolution)
# Pipeline, batch size and metrics as ECSSD.
_base_ = './ecssd_saliency.py'
val_dataloader = dict(
    dataset=dict(
        type='DUTOMRONDataset',
        data_root='data/DUT-OMRON',
        data_prefix=dict(img_path='DUT-OMRON-image', seg_map_path='pixelwiseGT-new-PNG'),
        expected_num_images=5168))
test_dataloader = val_dataloader
