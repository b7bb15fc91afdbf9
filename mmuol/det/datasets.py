# Copyright (c) mmuol contributors. All rights reserved.
"""CorLoc datasets: VOC07 / VOC12 trainval and COCO20k, class-agnostic.

Ground truth follows LOST's ``datasets.py`` (valeoai/LOST, Apache-2.0), which
TokenCut and FOUND reuse, so CorLoc numbers are comparable:

* VOC: ``[xmin - 1, ymin - 1, xmax, ymax]`` (only the top-left corner moves:
  LOST reads the 1-based inclusive VOC pixels as continuous coordinates).
  mmdet's ``XMLDataset`` subtracts 1 from all four coordinates, so it is not
  reused as is. **All** objects are kept, including difficult and truncated
  ones; the "hard" ones carry ``ignore_flag=1`` so that
  ``CorLocMetric(hard=False)`` can drop them (LOST's ``--no_hard``).
* COCO20k: the 19,817 train2014 images of LOST's ``coco_20k_filenames.txt``;
  boxes ``[x, y, x + w, y + h]`` rounded with Python's ``round`` (LOST's
  ``int(round(x))``), crowd annotations removed, no other filtering.

Both datasets have a single class ``'foreground'`` (label 0).
"""
import os.path as osp
import xml.etree.ElementTree as ET
from typing import List, Optional, Sequence, Union

from mmdet.datasets import CocoDataset, XMLDataset
from mmdet.registry import DATASETS
from mmengine.fileio import get_local_path, list_from_file

#: The COCO20k image list shipped with mmuol (see its README for provenance).
COCO20K_FILE_LIST = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'datasets_files', 'coco_20k_filenames.txt')

_CORLOC_METAINFO = {
    'classes': ('foreground', ),
    'palette': [(220, 20, 60)],
}
_HARD_ATTRIBUTES = ('difficult', 'truncated')


def _xml_flag(obj: ET.Element, tag: str) -> int:
    """``int`` value of an optional 0/1 child tag (missing -> 0)."""
    node = obj.find(tag)
    if node is None or node.text is None:
        return 0
    return int(float(node.text))


@DATASETS.register_module()
class VOCCorLocDataset(XMLDataset):
    """PASCAL VOC in the released VOCdevkit layout, for CorLoc.

    Every object of every image in ``ann_file`` is loaded (class-agnostic,
    label 0). Boxes are ``[xmin - 1, ymin - 1, xmax, ymax]`` as in LOST. An
    object whose attributes in ``hard_attributes`` are set gets
    ``ignore_flag=1``; ``PackDetInputs`` then puts it into
    ``ignored_instances`` and :class:`CorLocMetric` decides whether to use it
    (``hard=True``, LOST's default protocol, uses all boxes).

    Args:
        hard_attributes (Sequence[str]): XML object tags that make an object
            "hard". Defaults to ``('difficult', 'truncated')``, LOST's
            ``--no_hard`` definition.
        **kwargs: :class:`mmdet.datasets.XMLDataset` arguments, e.g.
            ``data_root='data/VOCdevkit/'``,
            ``ann_file='VOC2007/ImageSets/Main/trainval.txt'``,
            ``data_prefix=dict(sub_data_root='VOC2007/')``.
    """

    METAINFO = _CORLOC_METAINFO

    def __init__(self, hard_attributes: Sequence[str] = _HARD_ATTRIBUTES, **kwargs) -> None:
        unknown = set(hard_attributes) - set(_HARD_ATTRIBUTES)
        if unknown:
            raise ValueError(f'hard_attributes must be taken from '
                             f'{_HARD_ATTRIBUTES}, got {sorted(unknown)}')
        self.hard_attributes = tuple(hard_attributes)
        super().__init__(**kwargs)
        sub_root = self.sub_data_root
        self._metainfo['dataset_type'] = ('VOC2007' if 'VOC2007' in sub_root else
                                          'VOC2012' if 'VOC2012' in sub_root else None)

    def _parse_instance_info(self,
                             raw_ann_info: ET.ElementTree,
                             minus_one: bool = True) -> List[dict]:
        """Parse all objects of one XML file, LOST's way.

        Args:
            raw_ann_info (ElementTree): Parsed annotation file.
            minus_one (bool): Ignored; only ``xmin``/``ymin`` are shifted by
                -1 (LOST's convention), never ``xmax``/``ymax``.

        Returns:
            list[dict]: One dict per object with ``bbox``, ``bbox_label``
            (always 0), ``ignore_flag``, ``difficult``, ``truncated`` and
            ``class_name``.
        """
        instances = []
        for obj in raw_ann_info.findall('object'):
            bnd_box = obj.find('bndbox')
            xmin, ymin, xmax, ymax = (
                int(float(bnd_box.find(tag).text)) for tag in ('xmin', 'ymin', 'xmax', 'ymax'))
            flags = {tag: _xml_flag(obj, tag) for tag in _HARD_ATTRIBUTES}
            hard = any(flags[tag] for tag in self.hard_attributes)
            name = obj.find('name')
            instances.append(
                dict(
                    bbox=[xmin - 1, ymin - 1, xmax, ymax],
                    bbox_label=0,
                    ignore_flag=int(hard),
                    class_name=None if name is None else name.text,
                    **flags))
        return instances

    def filter_data(self) -> List[dict]:
        """Keep every image: CorLoc counts images without objects as misses
        (``hard=True``) and the metric skips them otherwise."""
        return self.data_list


@DATASETS.register_module()
class COCO20kDataset(CocoDataset):
    """COCO20k: 19,817 COCO train2014 images, class-agnostic, for CorLoc.

    Args:
        ann_file (str): ``instances_train2014.json`` (relative to
            ``data_root``). Defaults to
            ``'annotations/instances_train2014.json'``.
        image_list (str, optional): Text file with one image path per line;
            only those images are used (matched by file name). Defaults to
            the shipped copy of LOST's ``coco_20k_filenames.txt``. ``None``
            uses every image of ``ann_file`` (custom / test data).
        **kwargs: :class:`mmdet.datasets.CocoDataset` arguments, e.g.
            ``data_root='data/coco/'``, ``data_prefix=dict(img='train2014/')``.

    Raises:
        ValueError: If listed images are missing from ``ann_file`` (usually the
            wrong annotation file, e.g. val2014).
    """

    METAINFO = _CORLOC_METAINFO

    def __init__(self,
                 ann_file: str = 'annotations/instances_train2014.json',
                 image_list: Optional[str] = COCO20K_FILE_LIST,
                 **kwargs) -> None:
        self.image_list = image_list
        super().__init__(ann_file=ann_file, **kwargs)

    def _selected_file_names(self) -> Optional[List[str]]:
        if self.image_list is None:
            return None
        lines = list_from_file(self.image_list, backend_args=self.backend_args)
        return [osp.basename(line.strip()) for line in lines if line.strip()]

    def load_data_list(self) -> List[dict]:
        """Load the selected images and all their non-crowd annotations.

        Returns:
            list[dict]: Parsed data infos, in the order of ``image_list``
            (the order of ``ann_file`` when ``image_list`` is None).
        """
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            coco = self.COCOAPI(local_path)
        by_name = {osp.basename(info['file_name']): img_id for img_id, info in coco.imgs.items()}
        names = self._selected_file_names()
        if names is None:
            img_ids = list(coco.get_img_ids())
        else:
            missing = [n for n in names if n not in by_name]
            if missing:
                raise ValueError(f'{len(missing)} of the {len(names)} images listed in '
                                 f'{self.image_list} are not in {self.ann_file} (first: '
                                 f'{missing[0]}). COCO20k needs instances_train2014.json.')
            img_ids = [by_name[n] for n in names]
        # Class-agnostic: every category maps to label 0.
        self.cat_ids = list(coco.get_cat_ids())
        self.cat2label = {cat_id: 0 for cat_id in self.cat_ids}
        data_list = []
        for img_id in img_ids:
            raw_img_info = dict(coco.load_imgs([img_id])[0], img_id=img_id)
            raw_ann_info = coco.load_anns(coco.get_ann_ids(img_ids=[img_id]))
            data_list.append(
                self.parse_data_info(dict(raw_img_info=raw_img_info, raw_ann_info=raw_ann_info)))
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> Union[dict, List[dict]]:
        """Boxes exactly as LOST's ``extract_gt_COCO``.

        Unlike mmdet's ``CocoDataset`` nothing but crowd annotations is
        dropped (no minimum area / size, no clipping).

        Args:
            raw_data_info (dict): ``raw_img_info`` and ``raw_ann_info``.

        Returns:
            dict: Data info with ``instances`` (``bbox`` as rounded ints,
            ``bbox_label`` 0, ``ignore_flag`` 0, ``category_id``).
        """
        img_info = raw_data_info['raw_img_info']
        instances = []
        for ann in raw_data_info['raw_ann_info']:
            if ann.get('iscrowd', 0) == 1:
                continue
            x, y, w, h = ann['bbox']
            instances.append(
                dict(
                    bbox=[int(round(v)) for v in (x, y, x + w, y + h)],
                    bbox_label=0,
                    ignore_flag=0,
                    category_id=ann['category_id']))
        return dict(
            img_path=osp.join(self.data_prefix.get('img', ''), img_info['file_name']),
            img_id=img_info['img_id'],
            seg_map_path=None,
            height=img_info['height'],
            width=img_info['width'],
            instances=instances)

    def filter_data(self) -> List[dict]:
        """Keep every selected image (the benchmark is a fixed list)."""
        return self.data_list
