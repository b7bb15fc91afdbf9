# Copyright (c) mmuol contributors. All rights reserved.
"""MaskCut pseudo-labels for one image or a batch, as CutLER generates them.

The steps of CutLER's ``maskcut/maskcut.py`` (Wang et al., "Cut and Learn
for Unsupervised Object Detection and Instance Segmentation", CVPR 2023,
§3.1; method notes in ``configs/cutler/README.md``), re-implemented:

1. decode (PIL, ``convert('RGB')``) and resize to ``fixed_size x fixed_size``
   with LANCZOS, aspect ratio **not** kept (480 in CutLER); sides are then
   rounded to a multiple of the patch size (a no-op for 480 and patch 8);
2. ``ToTensor`` + ImageNet ``Normalize``; last-block keys of the DINO ViT
   (ViT-B/8 in CutLER), batched here;
3. :func:`~mmuol.localization.maskcut` (N = 3, tau = 0.15) on the keys;
4. nearest upsampling of each patch mask to the resized image;
5. the dense CRF on the resized image, hole filling, and the IoU gate
   (a mask whose CRF result has IoU < 0.5 with it is dropped)
   (:func:`~mmuol.localization.dense_crf.batch_maskcut_crf_postprocess`);
6. PIL (bicubic) resize of ``uint8(mask * 255)`` back to the original image
   size and CutLER's binarisation: ``> max / 2`` is foreground (and, as in
   its ``create_annotation_info``, everything is foreground when the
   minimum of the resized mask is not 0);
7. empty masks are dropped; the rest become COCO annotations
   (:mod:`mmuol.pseudo_labels.coco_json`: compressed RLE, pycocotools box
   and area).

Differences from the official script, none of which changes a mask: the
backbone runs on batches; the NCut runs where the keys are (GPU when there is
one); the CRF is skipped for empty masks (its result is empty) and runs once
per image for all its masks (shared lattices, per-mask results unchanged).
When ``fixed_size`` is not a multiple of the patch size the CRF runs on the
patch-rounded image (the official script fails there: its masks and its CRF
image differ in size).

Nothing here imports mmdet or mmseg; the backbone is any module with
``forward_last_block(x, with_qkv=True, with_attn=False).patch_keys`` and a
``patch_size`` (e.g. :class:`~mmuol.models.backbones.DINOViT`).
"""
import concurrent.futures
import dataclasses
import math
import multiprocessing
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from mmuol.localization.dense_crf import MASKCUT_CRF, batch_maskcut_crf_postprocess
from mmuol.localization.maskcut import maskcut
from mmuol.utils.constants import IMAGENET_MEAN, IMAGENET_STD
from mmuol.utils.image_io import decode_image
from .coco_json import annotations_from_masks

__all__ = [
    'MaskCutSettings', 'IMAGENET_MEAN', 'IMAGENET_STD', 'load_image', 'resize_for_maskcut',
    'normalize_images', 'upsample_patch_masks', 'resize_mask_to_image', 'maskcut_pseudo_masks',
    'maskcut_annotations', 'MaskCutPseudoLabeler', 'MaskCutProcessPool', 'MaskCutImages',
    'settings_from_dict'
]

_SOLVERS = ('auto', 'dense', 'lanczos')
_CRF_BACKENDS = ('builtin', 'pydensecrf')


@dataclasses.dataclass(frozen=True)
class MaskCutSettings:
    """Everything that decides the pseudo-labels of an image (besides the
    backbone and its weights).

    Attributes:
        fixed_size (int): Side of the square the image is resized to
            (CutLER: 480).
        num_masks (int): MaskCut stages ``N`` (CutLER: 3).
        tau (float): Cosine threshold of the patch graph (CutLER: 0.15; the
            ``maskcut.py`` argparse default 0.2 is not what was released).
        eps (float): Weight of non-edges (1e-5).
        solver (str): NCut eigensolver, ``'auto'``, ``'dense'`` (the official
            scipy call) or ``'lanczos'``.
        crf (bool): Refine with the dense CRF + IoU gate (False keeps the raw
            MaskCut masks, ``--no-crf``).
        crf_iou_thresh (float): IoU gate between the raw and the CRF mask
            (0.5).
        crf_backend (str): ``'builtin'`` or ``'pydensecrf'``.
    """
    fixed_size: int = 480
    num_masks: int = 3
    tau: float = 0.15
    eps: float = 1e-5
    solver: str = 'auto'
    crf: bool = True
    crf_iou_thresh: float = 0.5
    crf_backend: str = 'builtin'

    def __post_init__(self) -> None:
        if isinstance(self.fixed_size, bool) or int(self.fixed_size) != self.fixed_size \
                or self.fixed_size < 1:
            raise ValueError(f'fixed_size must be a positive int, got {self.fixed_size!r}')
        if isinstance(self.num_masks, bool) or int(self.num_masks) != self.num_masks \
                or self.num_masks < 1:
            raise ValueError(f'num_masks must be a positive int, got {self.num_masks!r}')
        if not (math.isfinite(self.tau) and -1.0 <= self.tau < 1.0):
            raise ValueError(f'tau must be a cosine threshold in [-1, 1), got {self.tau!r} '
                             '(CutLER: 0.15)')
        if not (math.isfinite(self.eps) and 0.0 < self.eps < 1.0):
            raise ValueError(f'eps must lie in (0, 1), got {self.eps!r} (official: 1e-5)')
        if self.solver not in _SOLVERS:
            raise ValueError(f'solver must be one of {_SOLVERS}, got {self.solver!r}')
        if not (math.isfinite(self.crf_iou_thresh) and 0.0 <= self.crf_iou_thresh <= 1.0):
            raise ValueError(f'crf_iou_thresh must lie in [0, 1], got {self.crf_iou_thresh!r}')
        if self.crf_backend not in _CRF_BACKENDS:
            raise ValueError(f'crf_backend must be one of {_CRF_BACKENDS}, got '
                             f'{self.crf_backend!r}')

    def to_dict(self) -> Dict[str, Any]:
        """Plain json-serialisable dict of the fields."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------
# Image side
# ---------------------------------------------------------------------------
def load_image(path: str) -> np.ndarray:
    """Read an image file as the official script does (PIL, RGB).

    Grayscale becomes RGB, alpha is dropped, 16-bit images are scaled to 8
    bits (:func:`mmuol.utils.decode_image`).

    Args:
        path (str): Image file.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB.

    Raises:
        OSError: The file cannot be read.
        ValueError: The file is not a decodable image.
    """
    with open(path, 'rb') as f:
        content = f.read()
    return decode_image(content, channel_order='rgb')


def resize_for_maskcut(image: np.ndarray, fixed_size: int = 480, patch_size: int = 8) -> np.ndarray:
    """CutLER's input resize: ``fixed_size`` square, LANCZOS, aspect not kept.

    The sides are then rounded to the nearest multiple of ``patch_size`` with
    a second LANCZOS resize (TokenCut's ``resize_pil``; nothing happens when
    ``fixed_size`` is already a multiple).

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB.
        fixed_size (int): Target side (480).
        patch_size (int): ViT patch size.

    Returns:
        np.ndarray: ``(S, S, 3)`` uint8 RGB, ``S = round(fixed_size /
        patch_size) * patch_size``.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'image must be an (H, W, 3) uint8 RGB array, got {image.shape} '
                         f'{image.dtype}')
    side = int(round(fixed_size / patch_size)) * patch_size
    if side < patch_size:
        raise ValueError(f'fixed_size {fixed_size} is smaller than one {patch_size}-pixel patch')
    pil = Image.fromarray(image).resize((fixed_size, fixed_size), Image.LANCZOS)
    if side != fixed_size:
        pil = pil.resize((side, side), Image.LANCZOS)
    return np.array(pil)  # writable (torch.from_numpy warns on read-only arrays)


def normalize_images(images: Tensor) -> Tensor:
    """``ToTensor`` + ImageNet ``Normalize`` of a uint8 batch, on its device.

    The float operations are torchvision's (``x / 255``, then ``(x - mean) /
    std`` with float32 statistics), so the input of the backbone is
    bit-identical to the official one.

    Args:
        images (Tensor): ``(B, H, W, 3)`` uint8 RGB.

    Returns:
        Tensor: ``(B, 3, H, W)`` float32.
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
        raise ValueError(f'images must be a (B, H, W, 3) uint8 tensor, got '
                         f'{tuple(images.shape)} {images.dtype}')
    x = images.permute(0, 3, 1, 2).to(torch.float32).div(255)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device)[:, None, None]
    return x.sub_(mean).div_(std)


# ---------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------
def upsample_patch_masks(masks: Tensor, patch_size: int) -> Tensor:
    """Nearest upsampling of patch masks to pixels (each patch -> p x p).

    Args:
        masks (Tensor): ``(N, h, w)`` bool patch masks.
        patch_size (int): ``p``.

    Returns:
        Tensor: ``(N, h * p, w * p)`` bool, same device.
    """
    return masks.repeat_interleave(patch_size, -2).repeat_interleave(patch_size, -1)


def resize_mask_to_image(mask: np.ndarray, image_hw: Sequence[int]) -> np.ndarray:
    """Resize a mask to the original image and binarise it as CutLER does.

    ``uint8(mask * 255)`` is resized with PIL's bicubic filter (the default
    for 8-bit images) to ``(W, H)``; a pixel is foreground when it is above
    half the maximum. As in the official ``create_annotation_info``, which
    sets the pixels at or below the threshold to the *minimum* and encodes
    every non-zero pixel, the whole image is foreground when the minimum is
    above 0 (e.g. a mask covering everything).

    Args:
        mask (np.ndarray): ``(h, w)`` bool mask on the resized image.
        image_hw (Sequence[int]): Original ``(H, W)``.

    Returns:
        np.ndarray: ``(H, W)`` bool.
    """
    mask = np.asarray(mask)
    height, width = (int(v) for v in image_hw)
    pil = Image.fromarray(mask.astype(np.uint8) * np.uint8(255))
    if pil.size != (width, height):
        pil = pil.resize((width, height), Image.BICUBIC)
    values = np.asarray(pil)
    top = int(values.max())
    if top == 0:
        return np.zeros((height, width), bool)
    if int(values.min()) > 0:
        return np.ones((height, width), bool)
    # uint8 v > top / 2.0  <=>  2 * v > top (exact in integers).
    return values.astype(np.int32) * 2 > top


def maskcut_pseudo_masks(keys: Tensor,
                         grid_hw: Sequence[int],
                         image: Union[np.ndarray, Tensor],
                         image_hw: Sequence[int],
                         settings: MaskCutSettings = MaskCutSettings(),
                         ncut_backend: str = 'auto') -> List[np.ndarray]:
    """The pseudo-masks of one image from its keys (steps 3-7).

    Args:
        keys (Tensor): ``(h * w, D)`` last-block patch keys (no CLS),
            row-major, on any device (the NCut and the CRF run there).
        grid_hw (Sequence[int]): Patch grid ``(h, w)``.
        image (np.ndarray | Tensor): ``(h * p, w * p, 3)`` uint8 RGB resized
            image the keys were computed on (the CRF image).
        image_hw (Sequence[int]): Original ``(H, W)`` the masks are resized
            back to.
        settings (MaskCutSettings): Hyper-parameters.
        ncut_backend (str): ``'auto'``, ``'scipy'`` or ``'torch'`` (see
            :func:`~mmuol.localization.maskcut`).

    Returns:
        list[np.ndarray]: ``(H, W)`` bool masks, non-empty, in MaskCut's
        discovery order (masks dropped by the filter, the IoU gate or the
        resize are left out).
    """
    h, w = (int(v) for v in grid_hw)
    img_h, img_w = int(image.shape[0]), int(image.shape[1])
    if img_h % h or img_w % w or img_h // h != img_w // w:
        raise ValueError(f'image of {img_h}x{img_w} pixels does not cover the {h}x{w} patch '
                         'grid with square patches (pass the resized image the keys come from)')
    patch = img_h // h
    stages = maskcut(
        keys, (h, w),
        num_masks=settings.num_masks,
        tau=settings.tau,
        eps=settings.eps,
        solver=settings.solver,
        backend=ncut_backend)
    patch_masks = [s.mask for s in stages if bool(s.mask.any())]
    if not patch_masks:
        return []
    masks = upsample_patch_masks(torch.stack(patch_masks), patch)
    if settings.crf:
        results = batch_maskcut_crf_postprocess(
            image,
            masks,
            iou_thresh=settings.crf_iou_thresh,
            params=MASKCUT_CRF,
            backend=settings.crf_backend)
        refined = [r.mask for r in results if r.mask is not None]
    else:
        refined = list(masks)
    out = []
    for m in refined:
        final = resize_mask_to_image(m.cpu().numpy(), image_hw)
        if final.any():
            out.append(final)
    return out


def maskcut_annotations(masks: Sequence[np.ndarray],
                        image_id: int,
                        first_id: int = 1) -> List[dict]:
    """COCO annotations of one image's pseudo-masks (category ``fg``).

    Args:
        masks (Sequence[np.ndarray]): ``(H, W)`` bool masks.
        image_id (int): Image id.
        first_id (int): Id of the first annotation.

    Returns:
        list[dict]: Entries with compressed RLE ``segmentation``, ``area``
        and ``bbox`` ``[x, y, w, h]`` (pycocotools), ``iscrowd`` 0.
    """
    return annotations_from_masks(list(masks), image_id=image_id, first_id=first_id)


class MaskCutPseudoLabeler:
    """Backbone + MaskCut + glue for a batch of resized images.

    Args:
        backbone (torch.nn.Module): A ViT with ``patch_size`` and
            ``forward_last_block`` (e.g. ``DINOViT``), already on ``device``
            and in eval mode.
        settings (MaskCutSettings): Hyper-parameters.
        device (str | torch.device): Where the backbone, the NCut and the CRF
            run.
        ncut_backend (str): See :func:`maskcut_pseudo_masks`.

    Example:
        >>> labeler = MaskCutPseudoLabeler(vit, MaskCutSettings(), 'cuda')
        >>> small = [resize_for_maskcut(img, 480, vit.patch_size) for img in imgs]
        >>> masks = labeler(small, [img.shape[:2] for img in imgs])
    """

    def __init__(self,
                 backbone: torch.nn.Module,
                 settings: MaskCutSettings = MaskCutSettings(),
                 device: Union[str, torch.device] = 'cpu',
                 ncut_backend: str = 'auto') -> None:
        self.backbone = backbone
        self.settings = settings
        self.device = torch.device(device)
        self.ncut_backend = ncut_backend
        self.patch_size = int(backbone.patch_size)

    @torch.inference_mode()
    def keys(self, images: Sequence[np.ndarray]) -> Tuple[Tensor, Tuple[int, int]]:
        """Last-block keys of a batch of same-size resized images.

        Args:
            images (Sequence[np.ndarray]): ``B`` arrays ``(S, S, 3)`` uint8.

        Returns:
            tuple[Tensor, tuple[int, int]]: ``(B, h * w, D)`` float32 keys on
            the device and the patch grid.
        """
        batch = torch.from_numpy(np.stack(images)).to(self.device)
        out = self.backbone.forward_last_block(
            normalize_images(batch), with_qkv=True, with_attn=False)
        return out.patch_keys, tuple(out.grid_hw)

    def __call__(self, images: Sequence[np.ndarray],
                 image_hws: Sequence[Sequence[int]]) -> List[List[np.ndarray]]:
        """Pseudo-masks of a batch.

        Args:
            images (Sequence[np.ndarray]): Resized ``(S, S, 3)`` uint8 RGB
                images (:func:`resize_for_maskcut`).
            image_hws (Sequence[Sequence[int]]): Original ``(H, W)`` of each.

        Returns:
            list[list[np.ndarray]]: Per image, its ``(H, W)`` bool masks.
        """
        if len(images) != len(image_hws):
            raise ValueError(f'{len(images)} images but {len(image_hws)} sizes')
        if not len(images):
            return []
        keys, grid_hw = self.keys(images)
        return [
            maskcut_pseudo_masks(k, grid_hw, img, hw, self.settings, self.ncut_backend)
            for k, img, hw in zip(keys, images, image_hws)
        ]


def _init_pool_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _pool_job(keys: np.ndarray, grid_hw: Tuple[int, int], image: np.ndarray,
              image_hw: Tuple[int, int], settings: Dict[str, Any]) -> List[np.ndarray]:
    return maskcut_pseudo_masks(
        torch.from_numpy(keys), grid_hw, image, image_hw, MaskCutSettings(**settings), 'scipy')


class MaskCutProcessPool:
    """Steps 3-7 (:func:`maskcut_pseudo_masks`) of many images in parallel
    CPU processes, for machines without a GPU.

    One image's NCut and CRF keep one core busy for about a second; with
    ``P`` single-threaded processes ``P`` images run at once (the backbone
    keeps running in the caller). Results are those of
    :func:`maskcut_pseudo_masks` on the CPU.

    Args:
        settings (MaskCutSettings): Hyper-parameters.
        processes (int): Worker processes (e.g. the number of cores).
        threads (int): torch threads per worker.
        start_method (str): ``'spawn'`` (default: safe with OpenMP/CUDA in
            the parent), ``'forkserver'`` or ``'fork'``.

    Example:
        >>> with MaskCutProcessPool(MaskCutSettings(), processes=8) as pool:
        ...     futures = [pool.submit(k, grid, img, hw) for k, img, hw in items]
        ...     masks = [f.result() for f in futures]
    """

    def __init__(self,
                 settings: MaskCutSettings,
                 processes: int,
                 threads: int = 1,
                 start_method: str = 'spawn') -> None:
        if int(processes) < 1:
            raise ValueError(f'processes must be >= 1, got {processes}')
        self.settings = settings
        self._settings = settings.to_dict()
        self._pool = concurrent.futures.ProcessPoolExecutor(
            int(processes),
            mp_context=multiprocessing.get_context(start_method),
            initializer=_init_pool_worker,
            initargs=(int(threads), ))

    def submit(self, keys: Tensor, grid_hw: Sequence[int], image: np.ndarray,
               image_hw: Sequence[int]) -> concurrent.futures.Future:
        """Queue one image; the future's result is its list of masks.

        Args:
            keys (Tensor): ``(h * w, D)`` keys (moved to the CPU).
            grid_hw (Sequence[int]): Patch grid.
            image (np.ndarray): Resized ``(h * p, w * p, 3)`` uint8 image.
            image_hw (Sequence[int]): Original ``(H, W)``.

        Returns:
            concurrent.futures.Future: Of ``list[np.ndarray]``.
        """
        return self._pool.submit(_pool_job,
                                 keys.detach().cpu().numpy(), tuple(int(v) for v in grid_hw),
                                 np.asarray(image), tuple(int(v) for v in image_hw), self._settings)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> 'MaskCutProcessPool':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MaskCutImages(torch.utils.data.Dataset):
    """Images decoded and resized for MaskCut (meant for DataLoader workers).

    An image that cannot be read is returned with an ``error`` instead of
    raising, so that one bad file never stops a run.

    Args:
        root (str): Image root.
        names (Sequence[str]): Paths relative to ``root`` (``/`` separated).
        fixed_size (int): See :func:`resize_for_maskcut`.
        patch_size (int): ViT patch size.

    Item ``k`` (a global index into ``names``) is a dict: ``index``,
    ``file_name``, ``image`` (``(S, S, 3)`` uint8 RGB or None), ``hw``
    (original ``(H, W)`` or None) and ``error`` (None or a message).
    """

    def __init__(self,
                 root: str,
                 names: Sequence[str],
                 fixed_size: int = 480,
                 patch_size: int = 8) -> None:
        self.root = root
        self.names = names
        self.fixed_size = int(fixed_size)
        self.patch_size = int(patch_size)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        name = self.names[index]
        item = dict(index=int(index), file_name=name, image=None, hw=None, error=None)
        try:
            image = load_image(os.path.join(self.root, *name.split('/')))
            item['hw'] = (int(image.shape[0]), int(image.shape[1]))
            item['image'] = resize_for_maskcut(image, self.fixed_size, self.patch_size)
        except (OSError, ValueError) as err:
            # No path in the message: it is stored and must not depend on
            # where the images are mounted.
            text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            item['error'] = f'{type(err).__name__}: {text}'
        return item


def settings_from_dict(values: Optional[Dict[str, Any]]) -> MaskCutSettings:
    """:class:`MaskCutSettings` from :meth:`MaskCutSettings.to_dict` output."""
    return MaskCutSettings(**(values or {}))
