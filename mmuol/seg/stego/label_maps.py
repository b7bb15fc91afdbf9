# Copyright (c) mmuol contributors. All rights reserved.
"""Label spaces of STEGO's benchmarks and the look-up tables into them.

Every table maps a raw label value (0..255) to a class id of the benchmark or
to 255 (ignored). Values that are not listed become 255, so a pixel can never
silently join a class (upstream's Potsdam remapping starts from zeros and
would turn an unexpected value into class 0).

==========================  ====================================================
``'cocostuff182_to_27'``    COCO-Stuff ``stuffthingmaps`` PNGs (0-based ids
                            0..181, 255 unlabelled) -> STEGO's 27 coarse
                            classes (``data.py::Coco.fine_to_coarse``).
``'cocostuff171_to_27'``    mmseg's converted COCO-Stuff-164k labels
                            (``*_labelTrainIds.png``, 171 contiguous ids) ->
                            the 182-id space -> 27 classes.
``'cityscapes_labelids_to_27'``  Cityscapes ``*_gtFine_labelIds.png``: ids
                            7..33 -> 0..26 (``labelIds - 7``, the 27-class
                            protocol; not the 19 train ids).
``'potsdam6_to_3'``         Potsdam's 6 classes (impervious surfaces,
                            building, low vegetation, tree, car, clutter; ids
                            0..5 as in STEGO's ``.mat`` files and mmseg's
                            reduced labels) -> roads+cars, buildings+clutter,
                            vegetation.
==========================  ====================================================
"""
from typing import Dict, Tuple

import numpy as np

__all__ = [
    'COCOSTUFF27_CLASSES', 'CITYSCAPES27_CLASSES', 'POTSDAM3_CLASSES', 'COCOSTUFF_UNUSED_IDS',
    'COCOSTUFF182_TO_27', 'LABEL_MAPS', 'label_lut'
]

COCOSTUFF27_CLASSES: Tuple[str, ...] = ('electronic', 'appliance', 'food-things',
                                        'furniture-things', 'indoor', 'kitchen', 'accessory',
                                        'animal', 'outdoor', 'person', 'sports', 'vehicle',
                                        'ceiling', 'floor', 'food-stuff', 'furniture-stuff',
                                        'rawmaterial', 'textile', 'wall', 'window', 'building',
                                        'ground', 'plant', 'sky', 'solid', 'structural', 'water')

CITYSCAPES27_CLASSES: Tuple[str, ...] = ('road', 'sidewalk', 'parking', 'rail track', 'building',
                                         'wall', 'fence', 'guard rail', 'bridge', 'tunnel', 'pole',
                                         'polegroup', 'traffic light', 'traffic sign', 'vegetation',
                                         'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus',
                                         'caravan', 'trailer', 'train', 'motorcycle', 'bicycle')

POTSDAM3_CLASSES: Tuple[str,
                        ...] = ('roads and cars', 'buildings and clutter', 'trees and vegetation')

#: COCO-Stuff ids (0-based) that no annotation uses; mmseg's 171 classes are
#: the 182 ids without these, in order.
COCOSTUFF_UNUSED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)

# Things (ids 0..90) go to 12 super-categories by contiguous id ranges.
_THING_RANGES = ((0, 0, 9), (1, 8, 11), (9, 14, 8), (15, 24, 7), (25, 32, 6), (33, 42, 10),
                 (43, 50, 5), (51, 60, 2), (61, 70, 3), (71, 76, 0), (77, 82, 1), (83, 90, 4))
# Stuff ids 91..181, in order.
_STUFF_COARSE = (
    17,
    17,
    22,
    20,
    20,
    22,
    15,
    25,
    16,
    13,
    12,
    12,
    17,
    17,
    23,
    15,
    15,
    17,
    15,
    21,  # 91-110
    15,
    25,
    13,
    13,
    13,
    13,
    13,
    22,
    26,
    14,
    14,
    15,
    22,
    21,
    21,
    24,
    20,
    22,
    15,
    17,  # 111-130
    16,
    15,
    22,
    24,
    21,
    17,
    25,
    16,
    21,
    17,
    22,
    16,
    21,
    21,
    25,
    21,
    26,
    21,
    24,
    20,  # 131-150
    17,
    14,
    21,
    26,
    15,
    23,
    20,
    21,
    24,
    15,
    24,
    22,
    25,
    15,
    20,
    17,
    17,
    22,
    14,
    18,  # 151-170
    18,
    18,
    18,
    18,
    18,
    18,
    26,
    26,
    19,
    19,
    24)  # 171-181


def _cocostuff182_to_27() -> Dict[int, int]:
    table = {}
    for first, last, coarse in _THING_RANGES:
        table.update({i: coarse for i in range(first, last + 1)})
    table.update({91 + i: c for i, c in enumerate(_STUFF_COARSE)})
    return table


#: STEGO's ``fine_to_coarse``: COCO-Stuff id (0..181) -> coarse class (0..26).
COCOSTUFF182_TO_27: Dict[int, int] = _cocostuff182_to_27()


def _build_maps() -> Dict[str, Dict[int, int]]:
    used = [i for i in range(182) if i not in COCOSTUFF_UNUSED_IDS]
    return {
        'cocostuff182_to_27': dict(COCOSTUFF182_TO_27),
        'cocostuff171_to_27': {
            k: COCOSTUFF182_TO_27[fine]
            for k, fine in enumerate(used)
        },
        'cityscapes_labelids_to_27': {
            i: i - 7
            for i in range(7, 34)
        },
        'potsdam6_to_3': {
            0: 0,
            4: 0,
            1: 1,
            5: 1,
            2: 2,
            3: 2
        },
    }


#: Named label maps (raw value -> class id); unlisted values become 255.
LABEL_MAPS: Dict[str, Dict[int, int]] = _build_maps()


def label_lut(mapping: str) -> np.ndarray:
    """The ``(256,)`` uint8 look-up table of a named label map.

    Args:
        mapping (str): A key of :data:`LABEL_MAPS`.

    Returns:
        np.ndarray: ``lut[raw] = class id or 255``.
    """
    if mapping not in LABEL_MAPS:
        raise KeyError(f'unknown label mapping {mapping!r}; choose from {sorted(LABEL_MAPS)}')
    lut = np.full(256, 255, dtype=np.uint8)
    for raw, cls in LABEL_MAPS[mapping].items():
        lut[raw] = cls
    return lut
