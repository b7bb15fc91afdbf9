# PASCAL VOC2012 trainval for single-object discovery (CorLoc), the same
# protocol as VOC07 (see voc07_corloc.py).
# Layout: data/VOCdevkit/VOC2012/{JPEGImages,Annotations,ImageSets/Main}.
_base_ = './voc07_corloc.py'
test_dataloader = dict(
    dataset=dict(
        ann_file='VOC2012/ImageSets/Main/trainval.txt', data_prefix=dict(sub_data_root='VOC2012/')))
