# Copyright (c) mmuol contributors. All rights reserved.
"""Class-name (prompt) lists of the eight open-vocabulary benchmarks.

The names are inserted verbatim into the prompt templates, as in the official
CLIP-DINOiser evaluation (wysoczanska/clip_dinoiser ``segmentation/datasets``
and mmseg 0.27's built-in ADE20K / Cityscapes classes): no renaming or
synonyms, ``'background'`` embedded like any other class, COCO-Object's
``'aeroplane'`` (but COCO-Stuff's ``'airplane'``), hyphenated COCO-Stuff names
(``'building-other'``) and ADE20K's ``'bed '`` **with a trailing space**.

==============  =======  ====================  ==============================
key             classes  background            dataset (mmseg 1.x)
==============  =======  ====================  ==============================
``voc``         21       class 0, rule on      ``PascalVOCDataset``
``voc20``       20       ignored (label 255)   ``PascalVOC20Dataset``
``context60``   60       class 0, plain argmax ``PascalContextDataset``
``context59``   59       ignored               ``PascalContextDataset59``
``coco_object`` 81       class 0, rule on      ``COCOObjectDataset``
``coco_stuff``  171      none                  ``COCOStuffDataset``
``cityscapes``  19       none                  ``CityscapesDataset``
``ade20k``      150      ignored               ``ADE20KDataset``
==============  =======  ====================  ==============================
"""
import os.path as osp
from typing import Dict, List, Sequence, Tuple, Union

from mmuol.localization.maskclip import check_class_names

__all__ = ['BENCHMARK_CLASS_NAMES', 'get_class_names']

# yapf: disable
# VOC and Pascal Context: the 20- and 59-class benchmarks are these lists
# without their first entry, 'background' (ignored, label 255).
_VOC = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat',
    'chair', 'cow', 'dining table', 'dog', 'horse', 'motorbike', 'person', 'potted plant',
    'sheep', 'sofa', 'train', 'tvmonitor',
)
_CONTEXT60 = (
    'background', 'aeroplane', 'bag', 'bed', 'bedclothes', 'bench', 'bicycle', 'bird',
    'boat', 'book', 'bottle', 'building', 'bus', 'cabinet', 'car', 'cat', 'ceiling',
    'chair', 'cloth', 'computer', 'cow', 'cup', 'curtain', 'dog', 'door', 'fence', 'floor',
    'flower', 'food', 'grass', 'ground', 'horse', 'keyboard', 'light', 'motorbike',
    'mountain', 'mouse', 'person', 'plate', 'platform', 'potted plant', 'road', 'rock',
    'sheep', 'shelves', 'sidewalk', 'sign', 'sky', 'snow', 'sofa', 'table', 'track',
    'train', 'tree', 'truck', 'tvmonitor', 'wall', 'water', 'window', 'wood',
)

#: Benchmark key -> class names in label order.
BENCHMARK_CLASS_NAMES: Dict[str, Tuple[str, ...]] = {
    'voc': _VOC,
    'voc20': _VOC[1:],
    'context60': _CONTEXT60,
    'context59': _CONTEXT60[1:],
    'coco_object': (
        'background', 'person', 'bicycle', 'car', 'motorcycle', 'aeroplane', 'bus', 'train',
        'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench',
        'bird', 'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe',
        'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard',
        'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
        'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl',
        'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza',
        'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed', 'dining table', 'toilet',
        'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven',
        'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear',
        'hair drier', 'toothbrush',
    ),
    'coco_stuff': (
        'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
        'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat',
        'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack',
        'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball',
        'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket',
        'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
        'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake',
        'chair', 'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop',
        'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
        'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier',
        'toothbrush', 'banner', 'blanket', 'branch', 'bridge', 'building-other', 'bush',
        'cabinet', 'cage', 'cardboard', 'carpet', 'ceiling-other', 'ceiling-tile', 'cloth',
        'clothes', 'clouds', 'counter', 'cupboard', 'curtain', 'desk-stuff', 'dirt',
        'door-stuff', 'fence', 'floor-marble', 'floor-other', 'floor-stone', 'floor-tile',
        'floor-wood', 'flower', 'fog', 'food-other', 'fruit', 'furniture-other', 'grass',
        'gravel', 'ground-other', 'hill', 'house', 'leaves', 'light', 'mat', 'metal',
        'mirror-stuff', 'moss', 'mountain', 'mud', 'napkin', 'net', 'paper', 'pavement',
        'pillow', 'plant-other', 'plastic', 'platform', 'playingfield', 'railing', 'railroad',
        'river', 'road', 'rock', 'roof', 'rug', 'salad', 'sand', 'sea', 'shelf', 'sky-other',
        'skyscraper', 'snow', 'solid-other', 'stairs', 'stone', 'straw', 'structural-other',
        'table', 'tent', 'textile-other', 'towel', 'tree', 'vegetable', 'wall-brick',
        'wall-concrete', 'wall-other', 'wall-panel', 'wall-stone', 'wall-tile', 'wall-wood',
        'water-other', 'waterdrops', 'window-blind', 'window-other', 'wood',
    ),
    'cityscapes': (
        'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
        'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck',
        'bus', 'train', 'motorcycle', 'bicycle',
    ),
    'ade20k': (
        'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed ', 'windowpane',
        'grass', 'cabinet', 'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant',
        'curtain', 'chair', 'car', 'water', 'painting', 'sofa', 'shelf', 'house', 'sea',
        'mirror', 'rug', 'field', 'armchair', 'seat', 'fence', 'desk', 'rock', 'wardrobe',
        'lamp', 'bathtub', 'railing', 'cushion', 'base', 'box', 'column', 'signboard',
        'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace',
        'refrigerator', 'grandstand', 'path', 'stairs', 'runway', 'case', 'pool table',
        'pillow', 'screen door', 'stairway', 'river', 'bridge', 'bookcase', 'blind',
        'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench', 'countertop', 'stove',
        'palm', 'kitchen island', 'computer', 'swivel chair', 'boat', 'bar', 'arcade machine',
        'hovel', 'bus', 'towel', 'light', 'truck', 'tower', 'chandelier', 'awning',
        'streetlight', 'booth', 'television receiver', 'airplane', 'dirt track', 'apparel',
        'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet', 'poster',
        'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything',
        'swimming pool', 'stool', 'barrel', 'basket', 'waterfall', 'tent', 'bag', 'minibike',
        'cradle', 'oven', 'ball', 'food', 'step', 'tank', 'trade name', 'microwave', 'pot',
        'animal', 'bicycle', 'lake', 'dishwasher', 'screen', 'blanket', 'sculpture', 'hood',
        'sconce', 'vase', 'traffic light', 'tray', 'ashcan', 'fan', 'pier', 'crt screen',
        'plate', 'monitor', 'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag',
    ),
}
# yapf: enable


def get_class_names(spec: Union[str, Sequence[str]]) -> List[str]:
    """Resolve a class-name spec.

    Args:
        spec (str | Sequence[str]): A key of :data:`BENCHMARK_CLASS_NAMES`
            (``'voc'``, ``'ade20k'``, ...), a path to a text file with one
            name per line (only the line break is stripped, so a trailing
            space is kept; empty lines are skipped), or the names themselves.

    Returns:
        list[str]: Checked names (non-empty, unique).

    Raises:
        ValueError: Unknown key / missing file, empty list or duplicates.
    """
    if isinstance(spec, str):
        if spec in BENCHMARK_CLASS_NAMES:
            return list(BENCHMARK_CLASS_NAMES[spec])
        if osp.isfile(spec):
            with open(spec, encoding='utf-8') as f:
                names = [line.rstrip('\r\n') for line in f]
            return check_class_names([n for n in names if n.strip()], source=spec)
        raise ValueError(f'class_names {spec!r} is neither a benchmark key '
                         f'{sorted(BENCHMARK_CLASS_NAMES)} nor an existing text file '
                         '(one name per line)')
    return check_class_names(spec)
