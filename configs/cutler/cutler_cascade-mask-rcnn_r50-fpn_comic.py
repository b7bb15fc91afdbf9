# CutLER zero-shot on Comic (Inoue et al., cross-domain detection; VOC layout),
# train + test images, class-agnostic box AP / AR.
#   python tools/test.py configs/cutler/cutler_cascade-mask-rcnn_r50-fpn_comic.py CKPT
_base_ = ['./_base_/voc-layout_zero-shot.py']

data_root = 'data/cross-domain/'
test_dataloader = dict(
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(
                _base_.voc_dataset,
                data_root=data_root,
                data_prefix=dict(sub_data_root='comic/'),
                ann_file=f'comic/ImageSets/Main/{split}.txt') for split in ('train', 'test')
        ]))
