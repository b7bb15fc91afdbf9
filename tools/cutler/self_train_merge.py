# Copyright (c) mmuol contributors. All rights reserved.
"""Build the next CutLER self-training round's pseudo-labels by hand.

Usage:
    python tools/cutler/self_train_merge.py PREVIOUS_JSON PREDICTIONS OUT_JSON
        [--score-thr 0.7] [--mask-iou-thr 0.5] [--max-per-image 30]
        [--swapped-size auto|yes|no]

``PREVIOUS_JSON`` is the previous round's file (the MaskCut file for round
1; official files with swapped image sizes are read correctly).
``PREDICTIONS`` are the detector's predictions on the same images, either
a COCO results json (``*.segm.json``, e.g. from ``tools/test.py`` with
``--cfg-options test_evaluator.format_only=True
test_evaluator.outfile_prefix=work_dirs/preds``) or the ``.pkl`` that
``tools/test.py ... --out preds.pkl`` writes. The merge keeps, per image,
the best ``--max-per-image`` predictions with score >= ``--score-thr`` plus
the previous masks whose IoU with every kept prediction is below
``--mask-iou-thr`` (``mmuol.pseudo_labels.merge_self_training``), and
writes ``OUT_JSON`` atomically. Round 1 of CutLER uses ``--score-thr 0.7``,
round 2 ``0.65``.
"""
import argparse
import json
import os.path as osp
import sys

# Running from a source checkout must not need ``pip install -e .``.
_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from mmuol.pseudo_labels import dump_json, load_json, merge_self_training  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='CutLER self-training merge')
    parser.add_argument('previous', help='previous round pseudo-label json')
    parser.add_argument(
        'predictions',
        help='COCO results json (*.segm.json) or tools/test.py '
        '--out .pkl on the same images')
    parser.add_argument('out', help='output json')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.7,
        help='keep predictions with score >= this (CutLER: 0.7 round 1, '
        '0.65 round 2)')
    parser.add_argument(
        '--mask-iou-thr',
        type=float,
        default=0.5,
        help='previous masks survive below this IoU with every kept prediction')
    parser.add_argument(
        '--max-per-image',
        type=int,
        default=30,
        help='best predictions per image considered (CutLER: 30); 0 = all')
    parser.add_argument(
        '--swapped-size',
        choices=['auto', 'yes', 'no'],
        default='auto',
        help='width/height swap of official MaskCut files (default: detect)')
    return parser.parse_args(argv)


def read_predictions(path: str) -> list:
    """COCO result entries (``image_id``, ``score``, ``segmentation``).

    Raises:
        ValueError: A file that is neither kind, or predictions without masks.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'predictions file not found: {path}')
    if path.endswith(('.pkl', '.pickle')):
        from mmengine.fileio import load
        samples = load(path)
        preds = []
        for sample in samples:
            inst = sample.get('pred_instances', {})
            if 'masks' not in inst:
                raise ValueError(f'{path}: predictions without masks (a Mask R-CNN / Cascade Mask '
                                 'R-CNN is needed for self-training)')
            for score, rle in zip(inst['scores'].tolist(), inst['masks']):
                counts = rle['counts']
                preds.append(
                    dict(
                        image_id=sample['img_id'],
                        score=float(score),
                        segmentation=dict(
                            size=[int(v) for v in rle['size']],
                            counts=counts.decode('ascii')
                            if isinstance(counts, bytes) else counts)))
        return preds
    try:
        with open(path) as f:
            preds = json.load(f)
    except ValueError as err:
        raise ValueError(f'{path} is not a json file ({err})') from None
    if not isinstance(preds, list) or (preds and 'segmentation' not in preds[0]):
        raise ValueError(f'{path}: expected a COCO results list with "segmentation" (the '
                         '*.segm.json file, not *.bbox.json)')
    return preds


def main(argv=None) -> None:
    args = parse_args(argv)
    swapped = {'auto': 'auto', 'yes': True, 'no': False}[args.swapped_size]
    previous, num_fixed = load_json(args.previous, swapped_size=swapped)
    if num_fixed:
        print(f'{args.previous}: swapped back width/height of {num_fixed} image entries '
              '(official MaskCut file)')
    predictions = read_predictions(args.predictions)
    data, stats = merge_self_training(
        previous,
        predictions,
        score_thr=args.score_thr,
        mask_iou_thr=args.mask_iou_thr,
        max_per_image=args.max_per_image or None)
    dump_json(data, args.out)
    print(f'wrote {args.out}: {stats.num_annotations} annotations on {stats.num_images} images; '
          f'{stats.num_images_relabelled} images relabelled with {stats.num_predictions_kept} '
          f'predictions, {stats.num_previous_kept} previous masks kept beside them, '
          f'{stats.num_previous_replaced} replaced, {stats.num_previous_unchanged} unchanged')


if __name__ == '__main__':
    try:
        main()
    except (OSError, ValueError) as err:  # bad or missing input files, named
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
