# Copyright (c) mmuol contributors. All rights reserved.
"""A legible picture of a binary saliency prediction and its ground truth.

mmseg's ``SegLocalVisualizer`` paints every class with its palette colour:
for a saliency model it blackens the whole background, cannot show a
ground-truth mask whose foreground value is 255 (not a class id) and writes
the ``foreground`` label white on white. :class:`SaliencyVisualizer` (the one
``configs/_base_/default_runtime_saliency.py`` uses for
``tools/test.py --show-dir``) draws instead:

* the predicted foreground tinted in one colour (the rest of the image is
  left exactly as it is);
* the ground-truth outline in another colour, on top;
* a legend strip below the image (light text on a dark box, never over the
  image), with the image's IoU when both masks are present.

:func:`draw_saliency` is the drawing itself, usable without a visualizer.
"""
from typing import List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
from mmengine.dist import master_only
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer
from scipy import ndimage

from mmuol.evaluation import binarize_saliency_gt

__all__ = ['SaliencyVisualizer', 'draw_saliency']

Color = Tuple[int, int, int]

#: Magenta fill and cyan outline: distinct from each other (also for the
#: common colour-vision deficiencies) and rare in natural images.
DEFAULT_PRED_COLOR: Color = (255, 0, 200)
DEFAULT_GT_COLOR: Color = (0, 255, 255)
#: Legend texts of the prediction and the ground truth.
DEFAULT_LABELS = ('prediction', 'ground truth')
_LEGEND_BG: Color = (24, 24, 24)
_LEGEND_TEXT: Color = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _check_color(color: Sequence[int], name: str) -> Color:
    if len(color) != 3 or not all(0 <= int(c) <= 255 for c in color):
        raise ValueError(f'{name} must be an (R, G, B) triple in [0, 255], got {color!r}')
    return tuple(int(c) for c in color)


def _check_mask(mask: Optional[np.ndarray], hw: Tuple[int, int], name: str) -> Optional[np.ndarray]:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.shape != hw:
        raise ValueError(f'{name} has shape {mask.shape} but the image is {hw} (H, W)')
    return mask.astype(bool)


def gt_outline(gt_mask: np.ndarray, width: int) -> np.ndarray:
    """Inner border of a mask, ``width`` pixels thick.

    Pixels of the mask within ``width`` 4-connected steps of a background
    pixel or of the image edge.

    Args:
        gt_mask (np.ndarray): ``(H, W)`` bool mask.
        width (int): Border thickness in pixels (>= 1).

    Returns:
        np.ndarray: ``(H, W)`` bool border.
    """
    inner = ndimage.binary_erosion(gt_mask, iterations=width, border_value=0)
    return gt_mask & ~inner


def _legend_metrics(scale: float, thickness: int) -> Tuple[int, int, int]:
    """Text height, padding and swatch side of a legend row, in pixels."""
    (_, text_h), baseline = cv2.getTextSize('Ag', _FONT, scale, thickness)
    return text_h, max(4, text_h // 2), text_h + baseline


def _legend_rows(items: List[Tuple[str, Optional[Color], str]], max_width: int, scale: float,
                 thickness: int) -> Tuple[List[list], int, int]:
    """Lay legend items out in rows no wider than ``max_width`` (one item per
    row at least). Returns the rows, the row height and the widest row."""
    _, pad, swatch = _legend_metrics(scale, thickness)
    rows, row, row_w, widest = [], [], pad, 0
    for kind, color, text in items:
        text_w = cv2.getTextSize(text, _FONT, scale, thickness)[0][0]
        item_w = (swatch + pad if color is not None else 0) + text_w + 2 * pad
        if row and row_w + item_w > max_width:
            rows.append(row)
            widest = max(widest, row_w)
            row, row_w = [], pad
        row.append((kind, color, text, row_w))
        row_w += item_w
    rows.append(row)
    widest = max(widest, row_w)
    return rows, swatch + 2 * pad, widest


def _draw_legend(canvas: np.ndarray, top: int, rows: List[list], row_h: int, scale: float,
                 thickness: int, outline_width: int) -> None:
    """Draw legend rows into ``canvas[top:]`` (already filled with the box colour)."""
    text_h, pad, swatch = _legend_metrics(scale, thickness)
    for r, row in enumerate(rows):
        y0 = top + r * row_h + pad
        for kind, color, text, x in row:
            tx = x
            if color is not None:
                p0, p1 = (x, y0), (x + swatch - 1, y0 + swatch - 1)
                if kind == 'fill':
                    cv2.rectangle(canvas, p0, p1, color, thickness=-1)
                else:
                    cv2.rectangle(canvas, p0, p1, color, thickness=max(2, outline_width))
                tx = x + swatch + pad
            cv2.putText(canvas, text, (tx, y0 + text_h), _FONT, scale, _LEGEND_TEXT, thickness,
                        cv2.LINE_AA)


def draw_saliency(image: np.ndarray,
                  pred_mask: Optional[np.ndarray] = None,
                  gt_mask: Optional[np.ndarray] = None,
                  pred_color: Sequence[int] = DEFAULT_PRED_COLOR,
                  gt_color: Sequence[int] = DEFAULT_GT_COLOR,
                  alpha: float = 0.5,
                  outline_width: Optional[int] = None,
                  legend: bool = True,
                  labels: Sequence[str] = DEFAULT_LABELS) -> np.ndarray:
    """Draw a binary prediction and a ground-truth outline on an image.

    Predicted pixels become ``(1 - alpha) * pixel + alpha * pred_color``; the
    ground truth's inner border (:func:`gt_outline`) is painted ``gt_color``
    on top; every other pixel is unchanged. With ``legend`` a dark strip is
    added below the image (and, for images too narrow for the text, to the
    right), holding a swatch and label per drawn mask and the IoU when both
    are given.

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        pred_mask (np.ndarray, optional): ``(H, W)`` predicted foreground
            (non-zero = foreground).
        gt_mask (np.ndarray, optional): ``(H, W)`` bool ground-truth
            foreground (binarise 0/255 masks first, e.g. with
            :func:`~mmuol.evaluation.binarize_saliency_gt`).
        pred_color (Sequence[int]): RGB fill colour of the prediction.
        gt_color (Sequence[int]): RGB colour of the ground-truth outline.
        alpha (float): Opacity of the prediction fill, in (0, 1].
        outline_width (int, optional): Outline thickness in pixels; None
            scales it with the image (``max(2, min(H, W) // 150)``).
        legend (bool): Add the legend strip.
        labels (Sequence[str]): Legend texts of the prediction and the
            ground truth.

    Returns:
        np.ndarray: ``(H', W', 3)`` uint8 RGB picture, ``H' >= H``,
        ``W' >= W``; its top-left ``H x W`` block is the drawn image.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}')
    if not 0 < alpha <= 1:
        raise ValueError(f'alpha must be in (0, 1], got {alpha}')
    pred_color = _check_color(pred_color, 'pred_color')
    gt_color = _check_color(gt_color, 'gt_color')
    hw = image.shape[:2]
    pred_mask = _check_mask(pred_mask, hw, 'pred_mask')
    gt_mask = _check_mask(gt_mask, hw, 'gt_mask')
    if outline_width is None:
        outline_width = max(2, min(hw) // 150)
    if outline_width < 1:
        raise ValueError(f'outline_width must be >= 1, got {outline_width}')

    out = image.copy()
    if pred_mask is not None and pred_mask.any():
        tint = (1 - alpha) * image[pred_mask].astype(np.float32) + alpha * np.float32(pred_color)
        out[pred_mask] = np.round(tint).astype(np.uint8)
    if gt_mask is not None:
        out[gt_outline(gt_mask, outline_width)] = gt_color
    if not legend:
        return out

    items: List[Tuple[str, Optional[Color], str]] = []
    if pred_mask is not None:
        items.append(('fill', pred_color, labels[0]))
    if gt_mask is not None:
        items.append(('outline', gt_color, labels[1]))
    if pred_mask is not None and gt_mask is not None:
        union = int((pred_mask | gt_mask).sum())
        iou = (pred_mask & gt_mask).sum() / union if union else 1.0
        items.append(('text', None, f'IoU {iou:.2f}'))
    if not items:
        return out
    # Text scaled with the image, never below a legible size.
    scale = float(np.clip(max(hw) / 800, 0.5, 1.5))
    thickness = 1 if scale < 0.8 else 2
    rows, row_h, widest = _legend_rows(items, hw[1], scale, thickness)
    canvas = np.empty((hw[0] + row_h * len(rows), max(hw[1], widest), 3), np.uint8)
    canvas[...] = _LEGEND_BG
    canvas[:hw[0], :hw[1]] = out
    _draw_legend(canvas, hw[0], rows, row_h, scale, thickness, outline_width)
    return canvas


@VISUALIZERS.register_module()
class SaliencyVisualizer(SegLocalVisualizer):
    """Saliency pictures for ``--show`` / ``--show-dir`` (see the module docstring).

    A drop-in for ``SegLocalVisualizer`` in saliency configs
    (``visualizer = dict(type='SaliencyVisualizer', vis_backends=[...])``);
    ``SegVisualizationHook`` calls :meth:`add_datasample`.

    Args:
        name (str): Instance name. Defaults to ``'visualizer'``.
        image (np.ndarray, optional): Image to draw on.
        vis_backends (list[dict], optional): Visual backends.
        save_dir (str, optional): Where the backends save.
        pred_color (Sequence[int]): RGB fill of the prediction (magenta).
        gt_color (Sequence[int]): RGB outline of the ground truth (cyan).
        alpha (float): Opacity of the prediction fill. Defaults to 0.5.
        outline_width (int, optional): GT outline thickness; None scales it
            with the image.
        gt_convention (str): How a ground truth becomes a mask:
            ``'tokencut'`` (any non-zero value, the default) or ``'found'``
            (only 255), as in :class:`~mmuol.seg.SaliencyMetric`.
        **kwargs: ``SegLocalVisualizer`` arguments (``classes``,
            ``palette``, ``dataset_name``).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[dict]] = None,
                 save_dir: Optional[str] = None,
                 pred_color: Sequence[int] = DEFAULT_PRED_COLOR,
                 gt_color: Sequence[int] = DEFAULT_GT_COLOR,
                 alpha: float = 0.5,
                 outline_width: Optional[int] = None,
                 gt_convention: str = 'tokencut',
                 **kwargs) -> None:
        super().__init__(name, image, vis_backends, save_dir, alpha=alpha, **kwargs)
        self.pred_color = _check_color(pred_color, 'pred_color')
        self.gt_color = _check_color(gt_color, 'gt_color')
        self.outline_width = outline_width
        binarize_saliency_gt(np.zeros((1, 1), np.uint8), gt_convention)  # validates the name
        self.gt_convention = gt_convention

    @staticmethod
    def _pred_mask(data_sample: SegDataSample) -> Optional[np.ndarray]:
        """The binary prediction: ``pred_sem_seg`` (non-zero), else
        ``pred_saliency > 0.5``."""
        if 'pred_sem_seg' in data_sample:
            return data_sample.pred_sem_seg.data[0].cpu().numpy() != 0
        if 'pred_saliency' in data_sample:
            return data_sample.pred_saliency.data[0].cpu().numpy() > 0.5
        return None

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: Optional[SegDataSample] = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       with_labels: Optional[bool] = True) -> None:
        """Draw a sample and save it to the backends (or ``out_file``, or show it).

        Args:
            name (str): Image identifier (the saved file's stem).
            image (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
            data_sample (SegDataSample, optional): Prediction
                (``pred_sem_seg`` / ``pred_saliency``) and ground truth
                (``gt_sem_seg``, any values: 0/255 and 0/1 masks work).
            draw_gt (bool): Draw the ground-truth outline.
            draw_pred (bool): Draw the prediction.
            show (bool): Show the picture in a window.
            wait_time (float): Seconds to show it.
            out_file (str, optional): Write the picture here instead of the
                backends.
            step (int): Global step for the backends.
            with_labels (bool, optional): Add the legend strip.
        """
        pred = gt = None
        if data_sample is not None:
            if draw_pred:
                pred = self._pred_mask(data_sample)
            if draw_gt and 'gt_sem_seg' in data_sample:
                gt_map = data_sample.gt_sem_seg.data[0].cpu().numpy()
                gt = binarize_saliency_gt(gt_map, self.gt_convention)
        drawn = draw_saliency(
            image,
            pred,
            gt,
            pred_color=self.pred_color,
            gt_color=self.gt_color,
            alpha=self.alpha,
            outline_width=self.outline_width,
            legend=bool(with_labels))
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        else:
            self.add_image(name, drawn, step)
