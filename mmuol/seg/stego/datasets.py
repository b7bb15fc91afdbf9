# Copyright (c) mmuol contributors. All rights reserved.
"""STEGO's benchmarks as mmseg datasets, and the KNN-partner wrapper.

=======================  ==============================================================
``COCOStuff27Dataset``   COCO-Stuff images + labels, 27 coarse classes; the image list
                         is the ``ann_file`` (STEGO's curated lists
                         ``curated/{train2017,val2017}/Coco164kFull_Stuff_Coarse[_7].txt``)
                         or the whole folder. Labels need ``STEGORemapLabels`` with
                         ``'cocostuff182_to_27'`` (``stuffthingmaps`` PNGs) or
                         ``'cocostuff171_to_27'`` (mmseg's ``*_labelTrainIds.png``).
``Cityscapes27Dataset``  ``leftImg8bit`` / ``gtFine`` ``*_labelIds.png`` with
                         ``'cityscapes_labelids_to_27'`` (27 classes, ids 7..33).
``Potsdam3Dataset``      STEGO's ``potsdam/{imgs,gt}/<id>.mat`` tiles listed in
                         ``labelled_train.txt`` / ``labelled_test.txt``, loaded with
                         ``LoadPotsdamMat`` and mapped with ``'potsdam6_to_3'``.
``FiveCropDataset``      The output of ``tools/stego/five_crop.py`` (``img/``,
                         ``label/``, ``crops.txt``) with the class list of the source.
``STEGOKNNPairDataset``  Wraps any of these: returns each sample with the packed image
                         of a KNN partner (``data_samples.img_pos``) drawn from the table
                         written by ``tools/stego/precompute_knns.py``.
=======================  ==============================================================

Workflow and commands: ``configs/stego/README.md``.
"""
import os.path as osp
from typing import List, Optional, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from mmuol.localization.stego import draw_knn_partner
from .label_maps import CITYSCAPES27_CLASSES, COCOSTUFF27_CLASSES, POTSDAM3_CLASSES

__all__ = [
    'COCOStuff27Dataset', 'Cityscapes27Dataset', 'Potsdam3Dataset', 'FiveCropDataset',
    'STEGOKNNPairDataset', 'knn_image_keys'
]

_BENCHMARK_CLASSES = {
    'cocostuff27': COCOSTUFF27_CLASSES,
    'cityscapes27': CITYSCAPES27_CLASSES,
    'potsdam3': POTSDAM3_CLASSES,
}


@DATASETS.register_module()
class COCOStuff27Dataset(BaseSegDataset):
    """COCO-Stuff with STEGO's 27 coarse classes (12 things, 15 stuff)."""
    METAINFO = dict(classes=COCOSTUFF27_CLASSES)

    def __init__(self, img_suffix: str = '.jpg', seg_map_suffix: str = '.png', **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, reduce_zero_label=False, **kwargs)


@DATASETS.register_module()
class Cityscapes27Dataset(BaseSegDataset):
    """Cityscapes with the 27 classes of STEGO (label ids 7..33)."""
    METAINFO = dict(classes=CITYSCAPES27_CLASSES)

    def __init__(self,
                 img_suffix: str = '_leftImg8bit.png',
                 seg_map_suffix: str = '_gtFine_labelIds.png',
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, reduce_zero_label=False, **kwargs)


@DATASETS.register_module()
class Potsdam3Dataset(BaseSegDataset):
    """STEGO's Potsdam-3 (``.mat`` tiles, 3 merged classes)."""
    METAINFO = dict(classes=POTSDAM3_CLASSES)

    def __init__(self, img_suffix: str = '.mat', seg_map_suffix: str = '.mat', **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, reduce_zero_label=False, **kwargs)


@DATASETS.register_module()
class FiveCropDataset(BaseSegDataset):
    """Five-crops written by ``tools/stego/five_crop.py``.

    ``data_root`` is the tool's output folder (``img/<stem>_<k>.jpg``,
    ``label/<stem>_<k>.png``, ``crops.txt``); labels keep the source's raw
    values, so the pipeline applies the same ``STEGORemapLabels`` as for the
    source dataset.

    Args:
        benchmark (str): Class list: ``'cocostuff27'``, ``'cityscapes27'`` or
            ``'potsdam3'``.
        **kwargs: :class:`BaseSegDataset` arguments; defaults
            ``ann_file='crops.txt'``, ``data_prefix=dict(img_path='img',
            seg_map_path='label')``.
    """

    def __init__(self, benchmark: str = 'cocostuff27', **kwargs) -> None:
        if benchmark not in _BENCHMARK_CLASSES:
            raise KeyError(f'benchmark must be one of {sorted(_BENCHMARK_CLASSES)}, got '
                           f'{benchmark!r}')
        kwargs.setdefault('ann_file', 'crops.txt')
        kwargs.setdefault('data_prefix', dict(img_path='img', seg_map_path='label'))
        kwargs.setdefault('img_suffix', '.jpg')
        kwargs.setdefault('seg_map_suffix', '.png')
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        metainfo.setdefault('classes', _BENCHMARK_CLASSES[benchmark])
        super().__init__(metainfo=metainfo, reduce_zero_label=False, **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'{self.ann_file} not found: run tools/stego/five_crop.py with --out-dir '
                f'{self.data_root} first (see configs/stego/README.md)')
        return super().load_data_list()


def knn_image_keys(dataset: BaseDataset) -> List[str]:
    """Identity of every image of a dataset, as stored in a KNN file: its
    path relative to the dataset's image folder, in dataset order."""
    prefix = dataset.data_prefix.get('img_path', '') if hasattr(dataset, 'data_prefix') else ''
    keys = []
    for i in range(len(dataset)):
        path = dataset.get_data_info(i)['img_path']
        keys.append(osp.relpath(path, prefix) if prefix else osp.basename(path))
    return keys


@DATASETS.register_module()
class STEGOKNNPairDataset:
    """Every sample with a KNN partner, for STEGO's correspondence loss.

    ``__getitem__(i)`` runs the wrapped dataset's pipeline on image ``i`` and
    on a partner drawn uniformly from positions ``1..num_neighbors`` of row
    ``i`` of the KNN table (position 0 is the image itself), and stores the
    partner's packed image as ``data_samples.img_pos`` (its path as the
    ``img_pos_path`` meta). The table is checked against the dataset (same
    length, same images in the same order).

    Args:
        dataset (dict | BaseDataset): The training set (e.g. five-crops).
        knn_file (str): ``.npz`` of ``tools/stego/precompute_knns.py``
            (``nns`` ``(N, k)`` int, ``img_keys`` ``(N,)`` str).
        num_neighbors (int): Candidate partners per image (7 upstream).
        lazy_init (bool): Defer loading until :meth:`full_init`.
    """

    def __init__(self,
                 dataset: Union[dict, BaseDataset],
                 knn_file: str,
                 num_neighbors: int = 7,
                 lazy_init: bool = False) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.knn_file = knn_file
        self.num_neighbors = num_neighbors
        self.nns: Optional[np.ndarray] = None
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """The wrapped dataset's meta information."""
        return self.dataset.metainfo

    def full_init(self) -> None:
        """Load the wrapped dataset and the KNN table, and check they match.

        Raises:
            FileNotFoundError: No KNN file.
            ValueError: A table that does not describe this dataset.
        """
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        if not osp.isfile(self.knn_file):
            raise FileNotFoundError(
                f'KNN file {self.knn_file} not found: run tools/stego/precompute_knns.py on '
                'the training config first (see configs/stego/README.md)')
        with np.load(self.knn_file, allow_pickle=False) as data:
            if 'nns' not in data:
                raise ValueError(f'{self.knn_file} has no "nns" table')
            nns = data['nns'].astype(np.int64)
            keys = data['img_keys'].tolist() if 'img_keys' in data else None
        num = len(self.dataset)
        if nns.ndim != 2 or nns.shape[0] != num:
            raise ValueError(f'{self.knn_file} holds {nns.shape[0]} rows for a dataset of {num} '
                             'images: recompute it with tools/stego/precompute_knns.py')
        if not 1 <= self.num_neighbors < nns.shape[1]:
            raise ValueError(f'num_neighbors={self.num_neighbors} needs more than '
                             f'{self.num_neighbors} columns; {self.knn_file} has {nns.shape[1]}')
        if nns.min() < 0 or nns.max() >= num:
            raise ValueError(f'{self.knn_file} has indices outside [0, {num})')
        if keys is not None:
            own = knn_image_keys(self.dataset)
            bad = next((i for i, (a, b) in enumerate(zip(keys, own)) if a != b), None)
            if bad is not None:
                raise ValueError(f'{self.knn_file} was computed for other images: entry {bad} '
                                 f'is {keys[bad]!r} but the dataset has {own[bad]!r}; '
                                 'recompute it with tools/stego/precompute_knns.py')
        else:
            print_log(
                f'{self.knn_file} stores no image keys; trusting its order',
                logger='current',
                level=30)
        self.nns = nns
        self._fully_initialized = True

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> dict:
        if not self._fully_initialized:
            self.full_init()
        sample = self.dataset[idx]
        # numpy's global RNG: mmengine seeds it per dataloader worker.
        partner_idx = draw_knn_partner(self.nns[idx], self.num_neighbors, np.random)
        partner = self.dataset[partner_idx]
        data_sample = sample['data_samples']
        data_sample.img_pos = partner['inputs']
        data_sample.set_metainfo(dict(img_pos_path=partner['data_samples'].img_path))
        return sample

    def get_data_info(self, idx: int) -> dict:
        """The wrapped dataset's annotation of image ``idx``."""
        return self.dataset.get_data_info(idx)
