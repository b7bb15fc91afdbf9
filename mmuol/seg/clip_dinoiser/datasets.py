# Copyright (c) mmuol contributors. All rights reserved.
"""Datasets and a transform for CLIP-DINOiser (mmseg).

* :class:`PascalVOC20Dataset` - VOC12 val without the background class
  (``reduce_zero_label=True``: background pixels are ignored), 20 classes.
* :class:`COCOObjectDataset` - COCO-Object: background + the 80 COCO things,
  ``*_instanceTrainIds.png`` maps made by the official
  ``tools/convert_coco_object.py`` from COCO-Stuff 164k.
* :class:`ImageSubsetDataset` - unlabeled images (an ``ImageFolder`` tree
  such as ImageNet ``train/``, or a split file), optionally ``num_samples``
  drawn with replacement (CLIP-DINOiser trains on 1,000 ImageNet images).
* :class:`RandomBrightnessJitter` - torchvision ``ColorJitter(brightness=b)``.

The other benchmarks use mmseg's own datasets (``PascalVOCDataset``,
``PascalContextDataset``, ``PascalContextDataset59``, ``COCOStuffDataset``,
``CityscapesDataset``, ``ADE20KDataset``); the prompts come from the model's
class names, not from the dataset.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from mmseg.datasets import BaseSegDataset, PascalVOCDataset
from mmseg.registry import DATASETS, TRANSFORMS

from .class_names import BENCHMARK_CLASS_NAMES

__all__ = [
    'PascalVOC20Dataset', 'COCOObjectDataset', 'ImageSubsetDataset', 'RandomBrightnessJitter',
    'IMAGE_EXTENSIONS'
]

#: Extensions ``ImageSubsetDataset`` lists (torchvision's ImageFolder set).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


@DATASETS.register_module()
class PascalVOC20Dataset(PascalVOCDataset):
    """Pascal VOC 2012 with the 20 object classes (background ignored)."""
    METAINFO = dict(
        classes=BENCHMARK_CLASS_NAMES['voc20'], palette=PascalVOCDataset.METAINFO['palette'][1:])

    def __init__(self, ann_file: str, reduce_zero_label: bool = True, **kwargs) -> None:
        super().__init__(ann_file=ann_file, reduce_zero_label=reduce_zero_label, **kwargs)


@DATASETS.register_module()
class COCOObjectDataset(BaseSegDataset):
    """COCO-Object (81 classes: background + 80 things, official names)."""
    METAINFO = dict(classes=BENCHMARK_CLASS_NAMES['coco_object'])

    def __init__(self,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '_instanceTrainIds.png',
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)


@DATASETS.register_module()
class ImageSubsetDataset(BaseDataset):
    """Unlabeled images, optionally a random subset drawn with replacement.

    Images are listed like torchvision's ``ImageFolder`` (class folders
    sorted, files sorted within each folder tree; a folder without
    subfolders is listed directly), or from ``ann_file`` (one id per line,
    ``<img_path>/<id><img_suffix>``, e.g. VOC's ``ImageSets/Segmentation/
    train.txt``). With ``num_samples`` the dataset is
    ``np.random.RandomState(sample_seed).choice(len(images), num_samples)``
    (with replacement), i.e. the official ``np.random.seed(0);
    np.random.choice(len(dataset), 1000)``.

    Args:
        data_root (str): Root folder.
        data_prefix (dict): ``img_path`` under ``data_root``.
        ann_file (str): Optional split file (relative to ``data_root``).
        img_suffix (str): Suffix appended to ``ann_file`` ids.
        extensions (Sequence[str]): Extensions listed (case-insensitive).
        num_samples (int, optional): Draw this many images with replacement.
        sample_seed (int): Seed of the draw. Defaults to 0.
        **kwargs: :class:`mmengine.dataset.BaseDataset` arguments
            (``pipeline``, ``test_mode``, ...).
    """
    METAINFO = dict(classes=())

    def __init__(self,
                 data_root: str = '',
                 data_prefix: dict = dict(img_path=''),
                 ann_file: str = '',
                 img_suffix: str = '.jpg',
                 extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 num_samples: Optional[int] = None,
                 sample_seed: int = 0,
                 **kwargs) -> None:
        self.img_suffix = img_suffix
        self.extensions = tuple(e.lower() for e in extensions)
        if num_samples is not None and num_samples <= 0:
            raise ValueError(f'num_samples must be positive, got {num_samples}')
        self.num_samples = num_samples
        self.sample_seed = sample_seed
        super().__init__(data_root=data_root, data_prefix=data_prefix, ann_file=ann_file, **kwargs)

    def _list_images(self, root: str) -> List[str]:
        subdirs = sorted(e.name for e in os.scandir(root) if e.is_dir())
        tops = [osp.join(root, d) for d in subdirs] if subdirs else [root]
        files = []
        for top in tops:
            for dirpath, _, fnames in sorted(os.walk(top, followlinks=True)):
                files.extend(
                    osp.join(dirpath, f) for f in sorted(fnames)
                    if f.lower().endswith(self.extensions))
        return files

    def load_data_list(self) -> List[dict]:
        """List (and subsample) the images."""
        root = self.data_prefix.get('img_path', '') or self.data_root
        if not osp.isdir(root):
            raise FileNotFoundError(f'image folder {root!r} does not exist (data_root + '
                                    'data_prefix.img_path)')
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'ann_file {self.ann_file!r} does not exist')
            with open(self.ann_file) as f:
                ids = [line.strip() for line in f if line.strip()]
            files = [osp.join(root, i + self.img_suffix) for i in ids]
            absent = [p for p in files if not osp.isfile(p)]
            if absent:
                raise FileNotFoundError(f'{len(absent)} images of {self.ann_file} are missing, '
                                        f'e.g. {absent[0]}')
        else:
            files = self._list_images(root)
        if not files:
            raise FileNotFoundError(f'no images ({", ".join(self.extensions)}) under {root}')
        if self.num_samples is not None:
            picks = np.random.RandomState(self.sample_seed).choice(len(files), self.num_samples)
            files = [files[i] for i in picks]
        return [dict(img_path=p, seg_fields=[], sample_idx=i) for i, p in enumerate(files)]


@TRANSFORMS.register_module()
class RandomBrightnessJitter(BaseTransform):
    """Multiply the image by a factor drawn from ``[1 - b, 1 + b]``.

    torchvision's ``ColorJitter(brightness=b)`` (the official training
    augmentation, ``b = 0.5``): ``clip(img * factor)`` to the uint8 range;
    the result stays float32 (no rounding).

    Args:
        brightness (float): ``b`` >= 0. Defaults to 0.5.
    """

    def __init__(self, brightness: float = 0.5) -> None:
        if brightness < 0:
            raise ValueError(f'brightness must be >= 0, got {brightness}')
        self.brightness = float(brightness)

    def transform(self, results: dict) -> dict:
        """Scale ``results['img']``."""
        factor = np.random.uniform(max(0.0, 1.0 - self.brightness), 1.0 + self.brightness)
        img = results['img'].astype(np.float32) * np.float32(factor)
        results['img'] = np.clip(img, 0.0, 255.0)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(brightness={self.brightness})'
