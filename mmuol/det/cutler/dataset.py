# Copyright (c) mmuol contributors. All rights reserved.
"""``MaskCutDataset``: class-agnostic pseudo-label files for CutLER training."""
import math
import os.path as osp
from typing import Any, Dict, List, Union

from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS
from mmengine import fileio
from mmengine.fileio import get_local_path
from mmengine.logging import MMLogger

from mmuol.pseudo_labels import PseudoLabelFileError, check_rles, load_json
from ..datasets import _quote

__all__ = ['MaskCutDataset']


@DATASETS.register_module()
class MaskCutDataset(BaseDetDataset):
    """MaskCut / CutLER pseudo-labels in COCO format, one class ``fg``.

    Reads the files of ``tools/maskcut/generate.py``, the self-training
    rounds (:class:`SelfTrainingHook`, ``tools/cutler/self_train_merge.py``)
    and CutLER's official files (``imagenet_train_fixsize480_tau0.15_N3.json``
    and the round jsons), whose image entries have width and height swapped:
    the swap is detected from the masks' RLE sizes (or forced with
    ``swapped_size=True``) and undone, so ``width``/``height`` (used by
    mmdet's aspect-ratio batching and ``filter_cfg.min_size``) are right.
    Every category maps to label 0.

    Each instance carries ``bbox`` (``[x1, y1, x2, y2]`` from the file's
    ``[x, y, w, h]``), ``bbox_label`` 0, ``ignore_flag`` (``iscrowd``) and
    ``mask`` (the RLE dict), which ``LoadAnnotations(with_mask=True)``
    decodes into ``BitmapMasks``; it works in ``MultiImageMixDataset`` with
    mmdet's ``CopyPaste`` and :class:`CutLERCopyPaste`. To train on a later
    self-training round, point ``ann_file`` at that round's file.

    Checks, each with a message naming the file and the entry:

    * at load: json structure; image files exist (``check_images``); RLE
      structure (``size`` = the image's ``[height, width]``, ``counts`` a
      string or list); boxes of four finite numbers with ``w, h >= 0``;
    * when an image is loaded: the RLE runs add up to ``H * W``
      (pycocotools would otherwise decode out of its buffer);
    * images without annotations are dropped from training by
      ``filter_cfg=dict(filter_empty_gt=True)`` (logged with their count);
      a file without any annotation is an error.

    An invalid entry raises a ``ValueError``; with ``skip_invalid=True``
    the image (missing file) or the annotation (bad mask / box) is dropped and
    the count is logged.

    Args:
        ann_file (str): Pseudo-label json (relative to ``data_root``).
        swapped_size (str | bool): ``'auto'`` (detect official files), True
            (official file: swap every image's width/height) or False.
            Defaults to ``'auto'``.
        skip_invalid (bool): Drop and count invalid entries instead of
            raising. Defaults to False.
        check_images (bool): Check at load that every image file exists
            (one ``stat`` per image). Defaults to True.
        **kwargs: :class:`mmdet.datasets.BaseDetDataset` arguments
            (``data_root``, ``data_prefix=dict(img='train/')``, ``pipeline``,
            ``filter_cfg``, ``test_mode``, ...).
    """

    METAINFO = {'classes': ('fg', ), 'palette': [(220, 20, 60)]}

    def __init__(self,
                 ann_file: str,
                 swapped_size: Union[str, bool] = 'auto',
                 skip_invalid: bool = False,
                 check_images: bool = True,
                 **kwargs) -> None:
        if swapped_size not in ('auto', True, False):
            raise ValueError(f"swapped_size must be 'auto', True or False, got {swapped_size!r}")
        self.swapped_size = swapped_size
        self.skip_invalid = bool(skip_invalid)
        self.check_images = bool(check_images)
        self.num_swapped_fixed = 0
        super().__init__(ann_file=ann_file, **kwargs)

    # ------------------------------------------------------------------ load
    def _raise_or_log(self, what: str, problems: List[str], total: int) -> None:
        if not problems:
            return
        name = f'{type(self).__name__} ({self.ann_file})'
        if not self.skip_invalid:
            raise ValueError(f'{name}: {len(problems)} of {total} {what} are invalid:'
                             f'{_quote(problems)}\nFix the file, or set skip_invalid=True in the '
                             'dataset config (e.g. --cfg-options '
                             'train_dataloader.dataset.skip_invalid=True) to drop and count them.')
        MMLogger.get_current_instance().warning(
            f'{name}: dropped {len(problems)} of {total} invalid {what} '
            f'(skip_invalid=True):{_quote(problems)}')

    def load_data_list(self) -> List[dict]:
        """Read, size-correct and check the pseudo-label file.

        Returns:
            list[dict]: One data info per image, in image-id order.
        """
        logger = MMLogger.get_current_instance()
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            try:
                data, self.num_swapped_fixed = load_json(local_path, self.swapped_size)
            except PseudoLabelFileError as err:
                raise PseudoLabelFileError(str(err).replace(local_path, self.ann_file)) from None
        if self.num_swapped_fixed:
            logger.info(f'{self.ann_file}: swapped back width/height of '
                        f'{self.num_swapped_fixed} image entries (official MaskCut file)')
        images = sorted(data['images'], key=lambda im: im['id'])
        if not images:
            raise ValueError(f'{self.ann_file} lists no image')
        annotations = data['annotations']
        if not annotations and not self.test_mode:
            raise ValueError(f'{self.ann_file} has no annotation at all: nothing to train on '
                             '(did MaskCut drop every mask? check the generator log)')
        image_hw = {im['id']: (im['height'], im['width']) for im in images}
        unknown = [a for a in annotations if a['image_id'] not in image_hw]
        if unknown:
            raise ValueError(f'{self.ann_file}: {len(unknown)} annotations refer to unlisted '
                             f'image ids (e.g. annotation {unknown[0]["id"]} -> image '
                             f'{unknown[0]["image_id"]})')
        bad: Dict[int, str] = self._check_structure(annotations, image_hw)
        self._raise_or_log('annotations', list(bad.values()), len(annotations))
        by_image: Dict[int, List[dict]] = {im['id']: [] for im in images}
        for k, ann in enumerate(annotations):
            if k not in bad:
                by_image[ann['image_id']].append(ann)

        data_list, missing = [], []
        img_root = self.data_prefix.get('img', '')
        for img in images:
            img_path = osp.join(img_root, img['file_name'])
            if self.check_images and not fileio.exists(img_path, backend_args=self.backend_args):
                missing.append(f'{img_path}: image file not found (image id {img["id"]})')
                continue
            anns = sorted(by_image[img['id']], key=lambda a: a['id'])
            data_list.append(
                dict(
                    img_path=img_path,
                    img_id=img['id'],
                    height=img['height'],
                    width=img['width'],
                    seg_map_path=None,
                    instances=[self._instance(a) for a in anns]))
        self._raise_or_log('images', missing, len(images))
        if not data_list:
            raise ValueError(f'{self.ann_file}: no usable image left')
        return data_list

    def _check_structure(self, annotations: List[dict], image_hw: Dict[int,
                                                                       tuple]) -> Dict[int, str]:
        """Reasons per index of annotations with a bad box or mask structure.

        The run-length totals are checked when an image is loaded
        (:meth:`prepare_data`), not here, to keep loading fast.
        """
        bad: Dict[int, str] = {}
        for k, ann in enumerate(annotations):
            box = ann.get('bbox')
            try:
                ok = (
                    len(box) == 4 and all(math.isfinite(float(v)) for v in box) and box[2] >= 0
                    and box[3] >= 0)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                bad[k] = (f'{self.ann_file}: annotation id {ann["id"]} (image id '
                          f'{ann["image_id"]}): bbox {box!r} is not [x, y, w, h] with w, h >= 0')
                continue
            seg = ann.get('segmentation')
            if isinstance(seg, dict):
                counts = seg.get('counts')
                size = seg.get('size')
                reason = None
                if not isinstance(counts, (str, list)) or not isinstance(size, list):
                    reason = 'segmentation is not an RLE dict with "size" [H, W] and "counts"'
                elif tuple(size) != tuple(image_hw[ann['image_id']]):
                    hw = image_hw[ann['image_id']]
                    reason = (f'mask size {size} differs from the image entry\'s height x width '
                              f'{hw[0]} x {hw[1]} (pass swapped_size=True for an official '
                              'MaskCut file whose sizes could not be detected)')
                if reason is not None:
                    bad[k] = (f'{self.ann_file}: annotation id {ann["id"]} (image id '
                              f'{ann["image_id"]}): {reason}')
            elif not (isinstance(seg, list) and seg):
                bad[k] = (f'{self.ann_file}: annotation id {ann["id"]} (image id '
                          f'{ann["image_id"]}): no segmentation')
        return bad

    @staticmethod
    def _instance(ann: dict) -> dict:
        x, y, w, h = (float(v) for v in ann['bbox'])
        return dict(
            bbox=[x, y, x + w, y + h],
            bbox_label=0,
            ignore_flag=int(bool(ann.get('iscrowd', 0))),
            mask=ann['segmentation'],
            ann_id=ann['id'])

    def filter_data(self) -> List[dict]:
        """Apply ``filter_cfg`` (``filter_empty_gt``, ``min_size``) in training.

        Returns:
            list[dict]: Kept data infos; the number of images without
            annotations is logged.
        """
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        filter_empty = self.filter_cfg.get('filter_empty_gt', False)
        min_size = self.filter_cfg.get('min_size', 0)
        kept = [
            info for info in self.data_list if (not filter_empty or any(
                not i['ignore_flag']
                for i in info['instances'])) and min(info['width'], info['height']) >= min_size
        ]
        num_empty = sum(1 for info in self.data_list if not info['instances'])
        if num_empty and filter_empty:
            MMLogger.get_current_instance().info(
                f'{self.ann_file}: {num_empty} of {len(self.data_list)} images have no '
                'pseudo-label and are not used for training (filter_empty_gt=True)')
        if not kept:
            raise ValueError(f'{self.ann_file}: no image left after filter_cfg={self.filter_cfg}')
        return kept

    # ------------------------------------------------------------------ get
    def prepare_data(self, idx: int) -> Any:
        """Check the image's masks, then run the pipeline.

        Raises:
            ValueError: A mask whose RLE runs do not add up to ``H * W``
                (unless ``skip_invalid``, which drops that annotation).
        """
        data_info = self.get_data_info(idx)
        instances = data_info['instances']
        if instances:
            bad = check_rles([
                dict(id=i['ann_id'], image_id=data_info['img_id'], segmentation=i['mask'])
                for i in instances
            ], {data_info['img_id']: (data_info['height'], data_info['width'])},
                             source=self.ann_file)
            if bad:
                if not self.skip_invalid:
                    raise ValueError(f'{_quote(list(bad.values()))}\nFix the file, or set '
                                     'skip_invalid=True in the dataset config.')
                MMLogger.get_current_instance().warning(
                    f'dropped invalid masks (skip_invalid=True):{_quote(list(bad.values()))}')
                data_info['instances'] = [i for k, i in enumerate(instances) if k not in bad]
        return self.pipeline(data_info)

    def get_cat_ids(self, idx: int) -> List[int]:
        """Category ids of one image (always label 0), for class-aware samplers."""
        return [0] * len(self.get_data_info(idx)['instances'])
