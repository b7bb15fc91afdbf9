# CutLER zero-shot on Comic (Inoue et al., cross-domain detection; VOC layout),
# train + test images, class-agnostic box AP / AR.
#   python tools/test.py configs/cutler/cutler_cascade-mask-rcnn_r50-fpn_comic.py CKPT
_base_ = ['./_base_/voc-layout_zero-shot.py']

data_root = 'data/cross-domain/'
_comic = dict(
    type='ClassAgnosticVOCDataset',
    data_root=data_root,
    data_prefix=dict(sub_data_root='comic/'),
    test_mode=True,
    pipeline={{_base_.voc_pipeline}})
test_dataloader = dict(
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(_comic, ann_file='comic/ImageSets/Main/train.txt'),
            dict(_comic, ann_file='comic/ImageSets/Main/test.txt'),
        ]))
