# Copyright (c) mmuol contributors. All rights reserved.
"""Class-agnostic datasets for CutLER's zero-shot benchmarks.

* :class:`ClassAgnosticCocoDataset`: any COCO-style json — COCO val2017,
  LVIS v1 val (images named by ``coco_url``), UVO, Objects365, and the
  ``*_cls_agnostic.json`` files CutLER distributes (COCO20k, VOC, Clipart,
  Watercolor, Comic, KITTI, OpenImages, ...). Every category is label 0.
* :class:`ClassAgnosticVOCDataset`: VOC-layout XML datasets (VOC07, and the
  cross-domain Clipart / Watercolor / Comic sets), every object label 0.

COCO20k uses :class:`mmuol.det.COCO20kDataset` (the image list); the metric
reads the masks from ``instances_train2014.json``.
"""
import copy
import xml.etree.ElementTree as ET
from typing import List

from mmdet.datasets import CocoDataset, XMLDataset
from mmdet.registry import DATASETS
from mmengine.fileio import get_local_path

__all__ = ['ClassAgnosticCocoDataset', 'ClassAgnosticVOCDataset']

_AGNOSTIC_METAINFO = {'classes': ('object', ), 'palette': [(220, 20, 60)]}


@DATASETS.register_module()
class ClassAgnosticCocoDataset(CocoDataset):
    """A COCO-style json with every category merged into label 0.

    Differences from :class:`mmdet.datasets.CocoDataset`: annotations of
    every category are kept (as label 0, class ``object``); an image entry
    without ``file_name`` takes it from its ``coco_url`` (LVIS v1:
    ``http://images.cocodataset.org/val2017/x.jpg`` -> ``val2017/x.jpg``,
    so ``data_prefix=dict(img='')`` with ``data_root`` = the COCO root);
    annotations without ``iscrowd`` (LVIS) are not crowd.

    Args:
        **kwargs: :class:`mmdet.datasets.CocoDataset` arguments.
    """

    METAINFO = _AGNOSTIC_METAINFO

    def load_data_list(self) -> List[dict]:
        """Load every image and every annotation (as label 0).

        Returns:
            list[dict]: Data infos in the json's image order.
        """
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            self.coco = self.COCOAPI(local_path)
        self.cat_ids = list(self.coco.get_cat_ids())
        self.cat2label = {cat_id: 0 for cat_id in self.cat_ids}
        self.cat_img_map = copy.deepcopy(self.coco.cat_img_map)
        data_list = []
        for img_id in self.coco.get_img_ids():
            raw_img_info = dict(self.coco.load_imgs([img_id])[0], img_id=img_id)
            if not raw_img_info.get('file_name'):
                url = raw_img_info.get('coco_url')
                if not url:
                    raise ValueError(f'{self.ann_file}: image id {img_id} has neither '
                                     '"file_name" nor "coco_url"')
                raw_img_info['file_name'] = '/'.join(url.rstrip('/').split('/')[-2:])
            raw_ann_info = self.coco.load_anns(self.coco.get_ann_ids(img_ids=[img_id]))
            data_list.append(
                self.parse_data_info(dict(raw_img_info=raw_img_info, raw_ann_info=raw_ann_info)))
        del self.coco
        return data_list


@DATASETS.register_module()
class ClassAgnosticVOCDataset(XMLDataset):
    """VOC-layout XML annotations with every object as label 0.

    Unlike :class:`mmdet.datasets.VOCDataset`, objects of any class name are
    kept (Clipart / Watercolor / Comic name other classes). ``difficult``
    objects get ``ignore_flag=1``, which :class:`ClassAgnosticCocoMetric`
    turns into COCO "crowd" (neither a miss nor a false positive).
    Boxes follow mmdet's VOC convention (``-1`` on all coordinates).

    Args:
        difficult_as_ignore (bool): Ignore ``difficult`` objects (True) or
            count them as normal objects. Defaults to True.
        **kwargs: :class:`mmdet.datasets.XMLDataset` arguments
            (``data_root``, ``ann_file='VOC2007/ImageSets/Main/test.txt'``,
            ``data_prefix=dict(sub_data_root='VOC2007/')``).
    """

    METAINFO = _AGNOSTIC_METAINFO

    def __init__(self, difficult_as_ignore: bool = True, **kwargs) -> None:
        self.difficult_as_ignore = bool(difficult_as_ignore)
        super().__init__(**kwargs)

    def parse_data_info(self, img_info: dict) -> dict:
        """mmdet's parsing, with errors that name the XML file."""
        try:
            return super().parse_data_info(img_info)
        except (ValueError, ET.ParseError) as err:
            raise ValueError(f'{img_info["xml_path"]}: {err}') from None

    def _parse_instance_info(self,
                             raw_ann_info: ET.ElementTree,
                             minus_one: bool = True) -> List[dict]:
        """Every ``<object>`` of one XML file, as label 0.

        Raises:
            ValueError: An object without a complete ``<bndbox>``.
        """
        instances = []
        for k, obj in enumerate(raw_ann_info.findall('object')):
            box = obj.find('bndbox')
            try:
                coords = [
                    int(float(box.find(tag).text)) for tag in ('xmin', 'ymin', 'xmax', 'ymax')
                ]
            except (AttributeError, TypeError, ValueError):
                raise ValueError(f'object {k} has no complete numeric <bndbox>') from None
            if minus_one:
                coords = [c - 1 for c in coords]
            difficult = obj.find('difficult')
            hard = difficult is not None and difficult.text is not None and int(difficult.text)
            instances.append(
                dict(
                    bbox=coords,
                    bbox_label=0,
                    ignore_flag=int(bool(hard) and self.difficult_as_ignore)))
        return instances
