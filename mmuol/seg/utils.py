# Copyright (c) mmuol contributors. All rights reserved.
"""Helpers shared by the mmseg segmentors and heads."""
from typing import List, Optional, Union

from torch import Tensor, nn

__all__ = ['unnormalize_inputs', 'pretrained_checkpoint']


def unnormalize_inputs(data_preprocessor: nn.Module, inputs: Tensor) -> Tensor:
    """Undo a ``SegDataPreProcessor``: network inputs back to RGB pixel values.

    The preprocessor's public ``mean`` / ``std`` buffers (present only when
    it normalises) and its ``channel_conversion`` flag say how the inputs were
    made; inputs that were not converted are BGR (mmcv's loaders), so their
    channels are reversed.

    Args:
        data_preprocessor (nn.Module): The model's data preprocessor.
        inputs (Tensor): ``(B, 3, H, W)`` inputs it produced.

    Returns:
        Tensor: ``(B, 3, H, W)`` float32 RGB on the inputs' device, in the
        0-255 range but neither rounded nor clamped.
    """
    x = inputs.float()
    mean = getattr(data_preprocessor, 'mean', None)
    std = getattr(data_preprocessor, 'std', None)
    if mean is not None and std is not None:
        x = x * std + mean
    if not getattr(data_preprocessor, 'channel_conversion', False):
        x = x[:, [2, 1, 0]]  # mmcv loads BGR
    return x


def pretrained_checkpoint(init_cfg: Union[None, dict, List[dict]], owner: str,
                          example: str) -> Optional[str]:
    """The ``checkpoint`` of the first ``type='Pretrained'`` entry of ``init_cfg``.

    For heads that read their released weights themselves (the official
    files are not flat state dicts, which mmengine's ``PretrainedInit``
    expects).

    Args:
        init_cfg (dict | list[dict] | None): The module's ``init_cfg``.
        owner (str): The module's name, for the error message.
        example (str): An example checkpoint path, for the error message.

    Returns:
        str | None: The checkpoint, or None without a ``Pretrained`` entry.

    Raises:
        KeyError: A ``Pretrained`` entry without ``checkpoint``.
    """
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    for cfg in cfgs:
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            if 'checkpoint' not in cfg:
                raise KeyError(f'{owner} init_cfg {dict(cfg)} has no `checkpoint` key '
                               f"(e.g. checkpoint='{example}')")
            return cfg['checkpoint']
    return None
