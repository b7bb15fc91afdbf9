# Copyright (c) mmuol contributors. All rights reserved.
"""Deep Spectral Methods in MMSegmentation (see ``configs/dsm/README.md``).

* :class:`DSMSegmentor` - training-free single-object segmentation: the
  last-block keys of a frozen DINO ViT on the image cropped to a multiple of
  the patch size (as DSM's ``extract_features``), the Fiedler vector of
  :func:`~mmuol.localization.dsm.dsm_eigenvectors` thresholded at 0
  (:func:`~mmuol.localization.dsm.dsm_single_region`), nearest up-sampling
  to the image (the uncovered bottom/right strip repeats the last patch
  row/column, as the official ``cv2`` resizes do) and DSM's dense CRF
  (:func:`~mmuol.localization.dsm_crf`). Scored by ``SaliencyMetric``.
* :class:`PrecomputedSegmentor` - a model without weights that returns label
  maps computed offline (the semantic pseudo-labels of
  ``tools/dsm/semantic_segmentation.py``), so ``tools/test.py`` can score them
  with ``HungarianIoUMetric``. The path of each map comes with the sample
  (``pred_path``, set by :class:`DSMPseudoLabelDataset`).
* :class:`DSMPseudoLabelDataset` - Pascal VOC with a ``pred_path`` per image
  (checked up front).
* :class:`ResizeLabelToImage` - a transform that resizes a patch-level label
  map to the image (nearest, ``cv2`` rule), to self-train an mmseg model on
  the pseudo-labels.
"""
import os.path as osp
from typing import List, Optional, Tuple

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.datasets import PascalVOCDataset
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import DATASETS, MODELS, TRANSFORMS
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList
from PIL import Image
from torch import Tensor

from mmuol.localization import dsm_crf
from mmuol.localization.dsm import dsm_eigenvectors, dsm_single_region, upsample_patch_labels
from .utils import unnormalize_inputs

__all__ = ['DSMSegmentor', 'PrecomputedSegmentor', 'DSMPseudoLabelDataset', 'ResizeLabelToImage']

#: Test defaults. ``K``, ``which_matrix``, ``image_color_lambda``,
#: ``image_downsample_factor`` and ``solver`` go to ``dsm_eigenvectors``
#: (README: K=2 for object segmentation); ``crf`` applies DSM's dense CRF;
#: ``center_crop`` / ``gt_threshold`` reproduce the CUB protocol (square
#: centre crop of prediction and ground truth; soft masks binarised at
#: ``gt > gt_threshold``).
DEFAULT_TEST_CFG = dict(
    K=2,
    which_matrix='laplacian',
    image_color_lambda=0.0,
    image_downsample_factor=None,
    solver='auto',
    crf=True,
    center_crop=False,
    gt_threshold=None)
_EIG_KEYS = ('K', 'which_matrix', 'image_color_lambda', 'image_downsample_factor', 'solver')


def _center_crop_box(hw: Tuple[int, int]) -> Tuple[int, int, int]:
    """torchvision ``center_crop(x, min(H, W))``: (top, left, size)."""
    size = min(hw)
    return int(round((hw[0] - size) / 2.0)), int(round((hw[1] - size) / 2.0)), size


@MODELS.register_module()
class DSMSegmentor(BaseSegmentor):
    """DSM's single-object segmentation (training-free).

    Args:
        backbone (dict): A ViT with ``last_block_maps`` (``DINOViT``).
        test_cfg (dict, optional): See :data:`DEFAULT_TEST_CFG`; unknown keys
            raise a ``KeyError``.
        data_preprocessor (dict, optional): ``SegDataPreProcessor`` with
            ImageNet mean/std and ``bgr_to_rgb=True`` (no ``size_divisor``:
            the image is cropped to a multiple of the patch size, not
            padded).
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 backbone: dict,
                 test_cfg: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if not hasattr(self.backbone, 'last_block_maps'):
            raise TypeError(f'{type(self.backbone).__name__} has no last_block_maps(); '
                            'DSMSegmentor needs a DINOViT-like backbone')
        unknown = set(test_cfg or {}) - set(DEFAULT_TEST_CFG)
        if unknown:
            raise KeyError(f'DSMSegmentor: unknown test_cfg keys {sorted(unknown)}; accepted: '
                           f'{sorted(DEFAULT_TEST_CFG)}')
        self.test_cfg = ConfigDict(dict(DEFAULT_TEST_CFG, **dict(test_cfg or {})))
        self.train_cfg = train_cfg
        self.patch_size = int(self.backbone.patch_size)

    # mmseg API --------------------------------------------------------------
    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """Last-block patch keys ``[(B, C, h, w)]`` of the patch-aligned crop."""
        return [self.backbone.last_block_maps(self._crop(inputs), 'k').maps['k']]

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Not a logit model; use :meth:`predict`."""
        raise NotImplementedError('DSMSegmentor has no logits; call predict()')

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Training-free.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError('DSMSegmentor is training-free; evaluate it with '
                                  'tools/test.py CONFIG')

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> List[Tensor]:
        return self.extract_feat(inputs)

    # inference ---------------------------------------------------------------
    def _crop(self, x: Tensor) -> Tensor:
        p = self.patch_size
        height, width = x.shape[-2:]
        if height < p or width < p:
            raise ValueError(f'image of {height}x{width} pixels is smaller than one {p}x{p} '
                             'patch (DSM crops images to a multiple of the patch size)')
        return x[..., :height // p * p, :width // p * p]

    def rgb_images(self, inputs: Tensor) -> Tensor:
        """``(B, H, W, 3)`` uint8 RGB images recovered from the inputs
        (:func:`~mmuol.seg.utils.unnormalize_inputs`, rounding)."""
        x = unnormalize_inputs(self.data_preprocessor, inputs)
        return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """Single-object masks as ``SegDataSample``.

        Each sample gets ``pred_sem_seg`` (``(1, H, W)`` int64 0/1),
        ``pred_saliency`` and ``seg_logits`` (the same mask as float, what
        ``SaliencyMetric`` scores), at ``ori_shape``.

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` normalised images.
            data_samples (list[SegDataSample], optional): With metas.

        Returns:
            list[SegDataSample]: One prediction per image.
        """
        cfg = self.test_cfg
        if data_samples is None:
            data_samples = [SegDataSample() for _ in range(inputs.shape[0])]
        eig_kwargs = {k: cfg[k] for k in _EIG_KEYS}
        need_rgb = cfg.crf or cfg.image_color_lambda > 0
        rgbs = self.rgb_images(inputs) if need_rgb else None
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            img_hw = tuple(int(v) for v in meta.get('img_shape', inputs.shape[-2:])[:2])
            x = inputs[i:i + 1, :, :img_hw[0], :img_hw[1]]
            try:
                keys = self.extract_feat(x)[0]
            except ValueError as err:
                raise ValueError(f'{meta.get("img_path", f"image {i}")}: {err}') from None
            grid = tuple(keys.shape[-2:])
            flat = keys[0].reshape(keys.shape[1], -1).T
            rgb = None if rgbs is None else rgbs[i, :img_hw[0], :img_hw[1]].numpy()
            eigs = dsm_eigenvectors(flat, grid, patch_size=self.patch_size, image=rgb, **eig_kwargs)
            mask = dsm_single_region(eigs).cpu().numpy().astype(np.int64)
            full = upsample_patch_labels(mask, eigs.cell_size, img_hw)
            if cfg.crf:
                full = dsm_crf(rgb, full, num_classes=2).cpu().numpy()
            pred = torch.from_numpy(np.ascontiguousarray(full)).to(inputs.device)
            ori_hw = tuple(int(v) for v in meta.get('ori_shape', img_hw)[:2])
            if ori_hw != img_hw:
                pred = torch.nn.functional.interpolate(
                    pred[None, None].float(), size=ori_hw, mode='nearest')[0, 0].long()
            if cfg.center_crop:
                top, left, size = _center_crop_box(ori_hw)
                pred = pred[top:top + size, left:left + size]
            self._set_gt(sample, cfg)
            sal = pred.float()[None]
            sample.set_data({
                'pred_sem_seg': PixelData(data=pred[None].long()),
                'pred_saliency': PixelData(data=sal),
                'seg_logits': PixelData(data=sal),
            })
        return data_samples

    @staticmethod
    def _set_gt(sample: SegDataSample, cfg: ConfigDict) -> None:
        """CUB protocol: crop (and binarise) the GT like the prediction."""
        if 'gt_sem_seg' not in sample or not (cfg.center_crop or cfg.gt_threshold is not None):
            return
        gt = sample.gt_sem_seg.data
        if cfg.center_crop:
            top, left, size = _center_crop_box(tuple(gt.shape[-2:]))
            gt = gt[..., top:top + size, left:left + size]
        if cfg.gt_threshold is not None:
            gt = (gt > cfg.gt_threshold).to(gt.dtype) * 255
        sample.gt_sem_seg = PixelData(data=gt.contiguous())


def _read_label_map(path: str) -> np.ndarray:
    """A label PNG as saved by the DSM tools (mode ``L`` / ``P``)."""
    try:
        with Image.open(path) as img:
            if img.mode not in ('L', 'P', 'I', 'I;16'):
                raise ValueError(f'{path}: a label map must be a single-channel PNG, got mode '
                                 f'{img.mode}')
            return np.array(img)
    except FileNotFoundError:
        raise FileNotFoundError(f'label map {path} not found') from None


def _resize_labels(labels: np.ndarray, out_hw: Tuple[int, int]) -> np.ndarray:
    """DSM's rule: a map of another size is stretched to the image with
    ``cv2.resize(..., INTER_NEAREST)``."""
    if tuple(labels.shape[:2]) == tuple(out_hw):
        return labels
    return cv2.resize(
        labels, dsize=(int(out_hw[1]), int(out_hw[0])), interpolation=cv2.INTER_NEAREST)


@MODELS.register_module()
class PrecomputedSegmentor(BaseSegmentor):
    """Return label maps computed offline as predictions (no weights).

    Every data sample must carry ``pred_path`` (add it to
    ``PackSegInputs.meta_keys``; :class:`DSMPseudoLabelDataset` sets it). The
    map is read as is (cluster ids, e.g. DSM's semantic pseudo-labels) and,
    when its size differs from the image, stretched to ``ori_shape`` with
    ``cv2`` nearest resizing (DSM's evaluation rule for patch-level maps).

    Args:
        data_preprocessor (dict, optional): Any ``SegDataPreProcessor`` (the
            images are not used).
        init_cfg (dict, optional): Unused.
    """

    def __init__(self,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        # A parameter-free model still needs a device for mmengine.
        self.register_buffer('_device_anchor', torch.zeros(()), persistent=False)

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """No features."""
        return []

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Not a logit model; use :meth:`predict`."""
        raise NotImplementedError('PrecomputedSegmentor has no logits; call predict()')

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Nothing to train.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError('PrecomputedSegmentor only replays saved predictions')

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> List[Tensor]:
        return []

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """Load each sample's ``pred_path`` into ``pred_sem_seg``.

        Args:
            inputs (Tensor): Unused.
            data_samples (list[SegDataSample]): With ``pred_path`` and
                ``ori_shape`` metas.

        Returns:
            list[SegDataSample]: ``pred_sem_seg`` ``(1, H, W)`` int64.
        """
        if data_samples is None:
            raise ValueError('PrecomputedSegmentor needs data samples with a pred_path')
        for sample in data_samples:
            meta = sample.metainfo
            path = meta.get('pred_path')
            if path is None:
                raise KeyError("data sample has no 'pred_path': add it to "
                               "PackSegInputs(meta_keys=...) and use DSMPseudoLabelDataset")
            ori_hw = tuple(int(v) for v in meta['ori_shape'][:2])
            labels = _resize_labels(_read_label_map(path), ori_hw).astype(np.int64)
            pred = torch.from_numpy(labels)[None].to(inputs.device)
            sample.set_data({'pred_sem_seg': PixelData(data=pred)})
        return data_samples


@DATASETS.register_module()
class DSMPseudoLabelDataset(PascalVOCDataset):
    """Pascal VOC segmentation whose samples carry a precomputed prediction.

    Adds ``pred_path = <pred_dir>/<image stem><pred_suffix>`` to every
    sample (read by :class:`PrecomputedSegmentor`); missing predictions raise
    a ``FileNotFoundError`` at construction naming them and the tool that
    writes them.

    Args:
        pred_dir (str): Folder of the predicted label maps (e.g.
            ``<work_dir>/semantic`` of ``tools/dsm/semantic_segmentation.py``);
            relative paths are taken as they are (not under ``data_root``).
        pred_suffix (str): Defaults to ``'.png'``.
        **kwargs: :class:`~mmseg.datasets.PascalVOCDataset` arguments.
    """

    def __init__(self, pred_dir: str, pred_suffix: str = '.png', **kwargs) -> None:
        self.pred_dir = pred_dir
        self.pred_suffix = pred_suffix
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        missing = []
        for info in data_list:
            stem = osp.splitext(osp.basename(info['img_path']))[0]
            info['pred_path'] = osp.join(self.pred_dir, stem + self.pred_suffix)
            if not fileio.exists(info['pred_path'], backend_args=self.backend_args):
                missing.append(info['pred_path'])
        if missing:
            raise FileNotFoundError(
                f'DSMPseudoLabelDataset: {len(missing)} of {len(data_list)} images have no '
                f'prediction in {self.pred_dir!r}, e.g. {missing[:3]}; write them with '
                'tools/dsm/semantic_segmentation.py (same image list)')
        return data_list


@TRANSFORMS.register_module()
class ResizeLabelToImage(BaseTransform):
    """Resize ``gt_seg_map`` to the image when their sizes differ.

    Patch-level pseudo-labels are stretched with ``cv2`` nearest resizing,
    the rule of DSM's own datasets. Place it right after
    ``LoadAnnotations``.

    Required keys: ``img``, ``gt_seg_map``. Modified keys: ``gt_seg_map``.
    """

    def transform(self, results: dict) -> dict:
        img_hw = results['img'].shape[:2]
        results['gt_seg_map'] = _resize_labels(results['gt_seg_map'], img_hw)
        return results
