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

Every entry is checked when the dataset loads, before any image is
processed: the annotation parses, every object has four numeric, non-inverted
coordinates, and the image file exists. An invalid entry raises a
``ValueError`` naming the file (the mmdet way); with ``skip_invalid=True`` it
is dropped and counted instead (``metainfo['invalid_images']``, logged and
reported by :class:`~mmuol.det.CorLocMetric`), and images that fail to
decode at test time are skipped the same way (see
:class:`~mmuol.det.LoadCorLocImageFromFile`).
"""
import math
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Any, List, Optional, Sequence, Union

from mmdet.datasets import CocoDataset, XMLDataset
from mmdet.registry import DATASETS
from mmengine import fileio
from mmengine.fileio import get_local_path, list_from_file
from mmengine.logging import MMLogger

__all__ = ['VOCCorLocDataset', 'COCO20kDataset', 'COCO20K_FILE_LIST', 'InvalidEntryError']

#: The COCO20k image list shipped with mmuol (see its README for provenance).
COCO20K_FILE_LIST = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'datasets_files', 'coco_20k_filenames.txt')

_CORLOC_METAINFO = {
    'classes': ('foreground', ),
    'palette': [(220, 20, 60)],
}
_HARD_ATTRIBUTES = ('difficult', 'truncated')
_VOC_BOX_TAGS = ('xmin', 'ymin', 'xmax', 'ymax')
#: Invalid entries quoted in an error / log message.
_NUM_QUOTED = 5


class InvalidEntryError(ValueError):
    """One dataset entry (annotation or image) cannot be used."""


def _xml_flag(obj: ET.Element, tag: str) -> int:
    """``int`` value of an optional 0/1 child tag (missing -> 0)."""
    node = obj.find(tag)
    if node is None or node.text is None:
        return 0
    return int(float(node.text))


def _xml_number(obj: ET.Element, tag: str, where: str) -> int:
    """An integer pixel coordinate of ``<bndbox>``, or InvalidEntryError."""
    node = obj.find(tag)
    text = None if node is None else node.text
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InvalidEntryError(f'{where}: <{tag}> is {text!r}, not a number') from None
    if not math.isfinite(value):
        raise InvalidEntryError(f'{where}: <{tag}> is {text!r}, not a finite number')
    return int(value)


def _quote(invalid: Sequence[str]) -> str:
    """The first invalid entries, one per line, for an error / log message
    (shared by the CorLoc and CutLER datasets and :class:`CorLocMetric`)."""
    lines = list(invalid[:_NUM_QUOTED])
    if len(invalid) > _NUM_QUOTED:
        lines.append(f'... and {len(invalid) - _NUM_QUOTED} more')
    return '\n  ' + '\n  '.join(lines)


class _CorLocDatasetMixin:
    """Shared ``skip_invalid`` handling of the CorLoc datasets."""

    skip_invalid: bool = False

    def _keep_valid(self, data_list: List[dict], invalid: List[str],
                    num_entries: int) -> List[dict]:
        """Raise on / log invalid entries; remember them in the metainfo."""
        source = f'{type(self).__name__} ({self.ann_file})'
        if invalid and not self.skip_invalid:
            raise ValueError(f'{source}: {len(invalid)} of {num_entries} entries are invalid:'
                             f'{_quote(invalid)}\nFix them, or set skip_invalid=True in the '
                             'dataset config (e.g. --cfg-options '
                             'test_dataloader.dataset.skip_invalid=True) to skip and count them.')
        if invalid:
            MMLogger.get_current_instance().warning(
                f'{source}: {len(invalid)} of {num_entries} entries are invalid and were '
                f'skipped (skip_invalid=True):{_quote(invalid)}')
        if not data_list:
            raise ValueError(f'{source}: no valid image left ({len(invalid)} of {num_entries} '
                             'entries are invalid)')
        self._metainfo['invalid_images'] = list(invalid)
        return data_list

    def prepare_data(self, idx: int) -> Any:
        """Pipeline output of one image; the pipeline sees ``skip_invalid``."""
        data_info = self.get_data_info(idx)
        data_info['skip_invalid'] = self.skip_invalid
        return self.pipeline(data_info)


@DATASETS.register_module()
class VOCCorLocDataset(_CorLocDatasetMixin, XMLDataset):
    """PASCAL VOC in the released VOCdevkit layout, for CorLoc.

    Every object of every image in ``ann_file`` is loaded (class-agnostic,
    label 0). Boxes are ``[xmin - 1, ymin - 1, xmax, ymax]`` as in LOST. An
    object whose attributes in ``hard_attributes`` are set gets
    ``ignore_flag=1``; ``PackDetInputs`` then puts it into
    ``ignored_instances`` and :class:`CorLocMetric` decides whether to use it
    (``hard=True``, LOST's default protocol, uses all boxes).

    Blank lines of ``ann_file`` are ignored. An entry is invalid when its
    XML is missing or malformed, an object has no ``<bndbox>``, a coordinate
    is not a number, a box is inverted (``xmin > xmax`` or ``ymin > ymax``)
    or the image file is missing.

    Args:
        hard_attributes (Sequence[str]): XML object tags that make an object
            "hard". Defaults to ``('difficult', 'truncated')``, LOST's
            ``--no_hard`` definition.
        skip_invalid (bool): Skip and count invalid entries (and, at test
            time, undecodable or unusable images) instead of raising.
            Defaults to False.
        **kwargs: :class:`mmdet.datasets.XMLDataset` arguments, e.g.
            ``data_root='data/VOCdevkit/'``,
            ``ann_file='VOC2007/ImageSets/Main/trainval.txt'``,
            ``data_prefix=dict(sub_data_root='VOC2007/')``.

    Raises:
        ValueError: An empty ``ann_file``, invalid entries (unless
            ``skip_invalid``) or no valid entry at all.
    """

    METAINFO = _CORLOC_METAINFO

    def __init__(self,
                 hard_attributes: Sequence[str] = _HARD_ATTRIBUTES,
                 skip_invalid: bool = False,
                 **kwargs) -> None:
        unknown = set(hard_attributes) - set(_HARD_ATTRIBUTES)
        if unknown:
            raise ValueError(f'hard_attributes must be taken from '
                             f'{_HARD_ATTRIBUTES}, got {sorted(unknown)}')
        self.hard_attributes = tuple(hard_attributes)
        self.skip_invalid = bool(skip_invalid)
        super().__init__(**kwargs)
        sub_root = self.sub_data_root
        self._metainfo['dataset_type'] = ('VOC2007' if 'VOC2007' in sub_root else
                                          'VOC2012' if 'VOC2012' in sub_root else None)

    def load_data_list(self) -> List[dict]:
        """Check and parse every image listed in ``ann_file``.

        Returns:
            list[dict]: Data infos of the valid entries, in list order.
        """
        lines = list_from_file(self.ann_file, backend_args=self.backend_args)
        img_ids = [line.strip() for line in lines if line.strip()]
        if not img_ids:
            raise ValueError(f'{type(self).__name__}: {self.ann_file} lists no image '
                             '(the file is empty)')
        data_list, invalid = [], []
        for img_id in img_ids:
            try:
                data_list.append(self._load_entry(img_id))
            except InvalidEntryError as err:
                invalid.append(str(err))
        return self._keep_valid(data_list, invalid, len(img_ids))

    def _load_entry(self, img_id: str) -> dict:
        """Data info of one image id, or InvalidEntryError naming the file."""
        xml_path = osp.join(self.sub_data_root, self.ann_subdir, f'{img_id}.xml')
        img_path = osp.join(self.sub_data_root, self.img_subdir, f'{img_id}.jpg')
        if not fileio.exists(xml_path, backend_args=self.backend_args):
            raise InvalidEntryError(f'{xml_path}: annotation file not found')
        try:
            with get_local_path(xml_path, backend_args=self.backend_args) as local_path:
                tree = ET.parse(local_path)
        except ET.ParseError as err:
            raise InvalidEntryError(f'{xml_path}: malformed XML ({err})') from None
        try:
            instances = self._parse_instance_info(tree)
        except InvalidEntryError as err:
            raise InvalidEntryError(f'{xml_path}: {err}') from None
        if not fileio.exists(img_path, backend_args=self.backend_args):
            raise InvalidEntryError(f'{img_path}: image file not found')
        info = dict(img_path=img_path, img_id=img_id, xml_path=xml_path, instances=instances)
        size = tree.getroot().find('size')
        for key in ('height', 'width'):
            node = None if size is None else size.find(key)
            text = None if node is None else node.text
            info[key] = int(text) if text is not None and text.strip().isdigit() else None
        return info

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

        Raises:
            InvalidEntryError: An object without ``<bndbox>``, with a
                non-numeric coordinate or an inverted box.
        """
        instances = []
        for k, obj in enumerate(raw_ann_info.findall('object')):
            name = obj.find('name')
            class_name = None if name is None else name.text
            where = f'object {k} ({class_name})'
            bnd_box = obj.find('bndbox')
            if bnd_box is None:
                raise InvalidEntryError(f'{where} has no <bndbox>')
            xmin, ymin, xmax, ymax = (_xml_number(bnd_box, tag, where) for tag in _VOC_BOX_TAGS)
            if xmin > xmax or ymin > ymax:
                raise InvalidEntryError(f'{where}: inverted box xmin={xmin}, ymin={ymin}, '
                                        f'xmax={xmax}, ymax={ymax}')
            try:
                flags = {tag: _xml_flag(obj, tag) for tag in _HARD_ATTRIBUTES}
            except ValueError as err:
                raise InvalidEntryError(f'{where}: {err}') from None
            hard = any(flags[tag] for tag in self.hard_attributes)
            instances.append(
                dict(
                    bbox=[xmin - 1, ymin - 1, xmax, ymax],
                    bbox_label=0,
                    ignore_flag=int(hard),
                    class_name=class_name,
                    **flags))
        return instances

    def filter_data(self) -> List[dict]:
        """Keep every image: CorLoc counts images without objects as misses
        (``hard=True``) and the metric skips them otherwise."""
        return self.data_list


@DATASETS.register_module()
class COCO20kDataset(_CorLocDatasetMixin, CocoDataset):
    """COCO20k: 19,817 COCO train2014 images, class-agnostic, for CorLoc.

    An entry is invalid when its image record has no ``file_name``, an
    annotation's ``bbox`` is not four finite numbers with ``w, h >= 0``, or
    the image file is missing.

    Args:
        ann_file (str): ``instances_train2014.json`` (relative to
            ``data_root``). Defaults to
            ``'annotations/instances_train2014.json'``.
        image_list (str, optional): Text file with one image path per line;
            only those images are used (matched by file name). Defaults to
            the shipped copy of LOST's ``coco_20k_filenames.txt``. ``None``
            uses every image of ``ann_file`` (custom / test data).
        skip_invalid (bool): Skip and count invalid entries (and, at test
            time, undecodable or unusable images) instead of raising.
            Defaults to False.
        **kwargs: :class:`mmdet.datasets.CocoDataset` arguments, e.g.
            ``data_root='data/coco/'``, ``data_prefix=dict(img='train2014/')``.

    Raises:
        FileNotFoundError: If ``ann_file`` does not exist.
        ValueError: If ``ann_file`` is not a COCO json, listed images are
            missing from it (usually the wrong annotation file, e.g.
            val2014), the selection is empty, or entries are invalid (unless
            ``skip_invalid``).
    """

    METAINFO = _CORLOC_METAINFO

    def __init__(self,
                 ann_file: str = 'annotations/instances_train2014.json',
                 image_list: Optional[str] = COCO20K_FILE_LIST,
                 skip_invalid: bool = False,
                 **kwargs) -> None:
        self.image_list = image_list
        self.skip_invalid = bool(skip_invalid)
        super().__init__(ann_file=ann_file, **kwargs)

    def _selected_file_names(self) -> Optional[List[str]]:
        if self.image_list is None:
            return None
        lines = list_from_file(self.image_list, backend_args=self.backend_args)
        return [osp.basename(line.strip()) for line in lines if line.strip()]

    def _load_coco(self):
        """The COCO API on ``ann_file``, with errors that name the file."""
        if not fileio.exists(self.ann_file, backend_args=self.backend_args):
            raise FileNotFoundError(f'COCO annotation file not found: {self.ann_file}')
        try:
            with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
                return self.COCOAPI(local_path)
        except (ValueError, AssertionError, KeyError, TypeError) as err:
            # json errors are ValueErrors; pycocotools asserts a dict and
            # indexes 'id' / 'image_id' / 'category_id'.
            raise ValueError(f'{self.ann_file} is not a valid COCO annotation file: '
                             f'{type(err).__name__}: {err}') from None

    def load_data_list(self) -> List[dict]:
        """Load the selected images and all their non-crowd annotations.

        Returns:
            list[dict]: Parsed data infos, in the order of ``image_list``
            (the order of ``ann_file`` when ``image_list`` is None).
        """
        coco = self._load_coco()
        by_name = {
            osp.basename(str(info.get('file_name'))): img_id
            for img_id, info in coco.imgs.items()
        }
        names = self._selected_file_names()
        if names is None:
            img_ids = list(coco.get_img_ids())
            source = self.ann_file
        else:
            missing = [n for n in names if n not in by_name]
            if missing:
                raise ValueError(f'{len(missing)} of the {len(names)} images listed in '
                                 f'{self.image_list} are not in {self.ann_file} (first: '
                                 f'{missing[0]}). COCO20k needs instances_train2014.json.')
            img_ids = [by_name[n] for n in names]
            source = self.image_list
        if not img_ids:
            raise ValueError(f'{type(self).__name__}: {source} lists no image')
        # Class-agnostic: every category maps to label 0.
        self.cat_ids = list(coco.get_cat_ids())
        self.cat2label = {cat_id: 0 for cat_id in self.cat_ids}
        data_list, invalid = [], []
        for img_id in img_ids:
            raw_img_info = dict(coco.load_imgs([img_id])[0], img_id=img_id)
            raw_ann_info = coco.load_anns(coco.get_ann_ids(img_ids=[img_id]))
            try:
                info = self.parse_data_info(
                    dict(raw_img_info=raw_img_info, raw_ann_info=raw_ann_info))
                if not fileio.exists(info['img_path'], backend_args=self.backend_args):
                    raise InvalidEntryError(f'{info["img_path"]}: image file not found')
            except InvalidEntryError as err:
                invalid.append(str(err))
                continue
            data_list.append(info)
        return self._keep_valid(data_list, invalid, len(img_ids))

    def parse_data_info(self, raw_data_info: dict) -> Union[dict, List[dict]]:
        """Boxes exactly as LOST's ``extract_gt_COCO``.

        Unlike mmdet's ``CocoDataset`` nothing but crowd annotations is
        dropped (no minimum area / size, no clipping).

        Args:
            raw_data_info (dict): ``raw_img_info`` and ``raw_ann_info``.

        Returns:
            dict: Data info with ``instances`` (``bbox`` as rounded ints,
            ``bbox_label`` 0, ``ignore_flag`` 0, ``category_id``).

        Raises:
            InvalidEntryError: An image without ``file_name`` or a malformed
                ``bbox``.
        """
        img_info = raw_data_info['raw_img_info']
        file_name = img_info.get('file_name')
        where = f'{self.ann_file}: image id {img_info["img_id"]}'
        if not isinstance(file_name, str) or not file_name:
            raise InvalidEntryError(f'{where} has no file_name')
        instances = []
        for ann in raw_data_info['raw_ann_info']:
            if ann.get('iscrowd', 0) == 1:
                continue
            bbox = ann.get('bbox')
            try:
                # Numbers only: float('12') would pass, then x + w fails later.
                if any(isinstance(v, (str, bytes, bool)) for v in bbox):
                    raise TypeError
                x, y, w, h = (float(v) for v in bbox)
                valid = all(math.isfinite(v) for v in (x, y, w, h)) and w >= 0 and h >= 0
            except (TypeError, ValueError):
                valid = False
            if not valid:
                raise InvalidEntryError(f'{where} ({file_name}), annotation id {ann.get("id")}: '
                                        f'bbox {bbox!r} is not [x, y, w, h] with w, h >= 0')
            x, y, w, h = bbox
            instances.append(
                dict(
                    bbox=[int(round(v)) for v in (x, y, x + w, y + h)],
                    bbox_label=0,
                    ignore_flag=0,
                    category_id=ann.get('category_id')))
        return dict(
            img_path=osp.join(self.data_prefix.get('img', ''), file_name),
            img_id=img_info['img_id'],
            seg_map_path=None,
            height=img_info.get('height'),
            width=img_info.get('width'),
            instances=instances)

    def filter_data(self) -> List[dict]:
        """Keep every selected image (the benchmark is a fixed list)."""
        return self.data_list
