# CutLER zero-shot on PASCAL VOC 2007 trainval + test (9,963 images, as CutLER's
# trainvaltest_2007 split), class-agnostic box AP / AR.
#   python tools/test.py configs/cutler/cutler_cascade-mask-rcnn_r50-fpn_voc07.py CKPT
_base_ = ['./_base_/voc-layout_zero-shot.py']

data_root = 'data/VOCdevkit/'
_voc07 = dict(
    type='ClassAgnosticVOCDataset',
    data_root=data_root,
    data_prefix=dict(sub_data_root='VOC2007/'),
    test_mode=True,
    pipeline={{_base_.voc_pipeline}})
test_dataloader = dict(
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(_voc07, ann_file='VOC2007/ImageSets/Main/trainval.txt'),
            dict(_voc07, ann_file='VOC2007/ImageSets/Main/test.txt'),
        ]))
