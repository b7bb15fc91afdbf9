# Copyright (c) mmuol contributors. All rights reserved.
"""Binary saliency datasets: ECSSD, DUTS and DUT-OMRON in their released layouts.

Each dataset is an image folder and a mask folder whose ``.png`` masks share
the image stem; configs in ``configs/_base_/datasets/*_saliency.py``:

===========  =========================  ===============================  ======
dataset      images                     masks                            images
===========  =========================  ===============================  ======
ECSSD        ``ECSSD/images``           ``ECSSD/ground_truth_mask``      1,000
DUTS-TE      ``DUTS-TE/DUTS-TE-Image``  ``DUTS-TE/DUTS-TE-Mask``         5,019
DUTS-TR      ``DUTS-TR/DUTS-TR-Image``  (not used by FOUND)              10,553
DUT-OMRON    ``DUT-OMRON/DUT-OMRON-     ``DUT-OMRON/pixelwiseGT-new-     5,168
             image``                    PNG``
===========  =========================  ===============================  ======

How images and masks are decoded (odd formats, masks outside {0, 255}, size
mismatches) is described in :mod:`mmuol.seg.datasets.transforms.loading`.
"""
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmengine import fileio
from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

__all__ = ['SaliencyDataset', 'ECSSDDataset', 'DUTSDataset', 'DUTOMRONDataset']


@DATASETS.register_module()
class SaliencyDataset(BaseSegDataset):
    """Binary saliency dataset: an image folder and a mask folder.

    Masks share the image stem (``<stem><seg_map_suffix>``); without
    ``data_prefix['seg_map_path']`` only images are listed (FOUND training
    on DUTS-TR). Missing masks raise a ``FileNotFoundError`` listing them.
    Classes are ``('background', 'foreground')``; masks keep their values
    (normally {0, 255}), which :class:`~mmuol.seg.SaliencyMetric` binarises
    per convention (``reduce_zero_label`` / ``ignore_index`` are not used).

    Args:
        img_suffix (str | tuple[str]): Image extensions (case-insensitive).
        seg_map_suffix (str): Mask extension. Defaults to ``'.png'``.
        expected_num_images (int, optional): Warn if the folder holds a
            different number of images (e.g. a partial download).
        **kwargs: :class:`~mmseg.datasets.BaseSegDataset` arguments
            (``data_root``, ``data_prefix``, ``pipeline``, ``ann_file`` with
            one stem per line, ...).
    """

    METAINFO = dict(classes=('background', 'foreground'), palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self,
                 img_suffix: Union[str, Sequence[str]] = ('.jpg', '.jpeg', '.png', '.bmp'),
                 seg_map_suffix: str = '.png',
                 expected_num_images: Optional[int] = None,
                 **kwargs) -> None:
        self.expected_num_images = expected_num_images
        if isinstance(img_suffix, str):
            img_suffix = (img_suffix, )
        super().__init__(
            img_suffix=tuple(s.lower() for s in img_suffix),
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=False,
            **kwargs)

    def _files_from_ann_file(self, img_dir: str) -> List[str]:
        """Image file names listed in ``ann_file`` (stems or file names)."""
        name = type(self).__name__
        stems = [
            line.strip()
            for line in fileio.list_from_file(self.ann_file, backend_args=self.backend_args)
            if line.strip()
        ]
        files = []
        for stem in stems:
            if stem.lower().endswith(self.img_suffix):
                files.append(stem)
                continue
            found = [
                stem + s for s in self.img_suffix
                if fileio.exists(osp.join(img_dir, stem + s), backend_args=self.backend_args)
            ]
            if not found:
                raise FileNotFoundError(f'{name}: no image for {stem!r} (listed in '
                                        f'{self.ann_file}) in {img_dir}')
            files.append(found[0])
        return files

    def load_data_list(self) -> List[dict]:
        """List images (sorted) and pair each with its mask."""
        img_dir = self.data_prefix.get('img_path', '') or ''
        ann_dir = self.data_prefix.get('seg_map_path', None) or None
        name = type(self).__name__
        if not fileio.isdir(img_dir, backend_args=self.backend_args):
            raise FileNotFoundError(
                f'{name}: image folder {img_dir!r} not found (data_root={self.data_root!r}); '
                'the released layouts are listed in configs/found/README.md (Data)')
        if self.ann_file:
            files = self._files_from_ann_file(img_dir)
        else:
            files = [
                f for f in fileio.list_dir_or_file(
                    img_dir, list_dir=False, recursive=False, backend_args=self.backend_args)
                if f.lower().endswith(self.img_suffix)
            ]
        data_list, missing = [], []
        for fname in sorted(files):
            info = dict(
                img_path=osp.join(img_dir, fname),
                label_map=self.label_map,
                reduce_zero_label=False,
                seg_fields=[])
            if ann_dir is not None:
                seg = osp.join(ann_dir, osp.splitext(fname)[0] + self.seg_map_suffix)
                if not fileio.exists(seg, backend_args=self.backend_args):
                    missing.append(seg)
                info['seg_map_path'] = seg
            data_list.append(info)
        if missing:
            raise FileNotFoundError(f'{name}: {len(missing)} of {len(data_list)} images have no '
                                    f'mask in {ann_dir}, e.g. {missing[:3]}')
        if not data_list:
            raise FileNotFoundError(f'{name}: no images with suffix {self.img_suffix} in {img_dir}')
        if self.expected_num_images is not None and len(data_list) != self.expected_num_images:
            print_log(
                f'{name}: found {len(data_list)} images in {img_dir}, the released dataset has '
                f'{self.expected_num_images}; results are not comparable to published numbers',
                logger='current',
                level=30)
        return data_list


@DATASETS.register_module()
class ECSSDDataset(SaliencyDataset):
    """ECSSD (1,000 images): ``images/*.jpg``, ``ground_truth_mask/*.png``."""


@DATASETS.register_module()
class DUTSDataset(SaliencyDataset):
    """DUTS: ``DUTS-TR/DUTS-TR-{Image,Mask}`` (10,553) and ``DUTS-TE/DUTS-TE-{Image,Mask}``
    (5,019)."""


@DATASETS.register_module()
class DUTOMRONDataset(SaliencyDataset):
    """DUT-OMRON (5,168 images): ``DUT-OMRON-image/*.jpg``, ``pixelwiseGT-new-PNG/*.png``."""
