# CutLER zero-shot on PASCAL VOC 2007 trainval + test (9,963 images, as CutLER's
# trainvaltest_2007 split), class-agnostic box AP / AR.
#   python tools/test.py configs/cutler/cutler_cascade-mask-rcnn_r50-fpn_voc07.py CKPT
_base_ = ['./_base_/voc-layout_zero-shot.py']

data_root = 'data/VOCdevkit/'
test_dataloader = dict(
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(
                _base_.voc_dataset,
                data_root=data_root,
                data_prefix=dict(sub_data_root='VOC2007/'),
                ann_file=f'VOC2007/ImageSets/Main/{split}.txt') for split in ('trainval', 'test')
        ]))
