# Copyright (c) mmuol contributors. All rights reserved.
"""STEGO's training-set preparation, step 1: five crops of every image.

Each image (and its label map) is cut with torchvision's ``five_crop`` at
``crop_ratio`` of its height and width (top-left, top-right, bottom-left,
bottom-right, centre), as ``crop_datasets.py`` of mhamilton723/STEGO. Crops
are written as::

    OUT_DIR/img/<stem>_<k>.jpg      (JPEG, PIL's default quality 75, as upstream)
    OUT_DIR/label/<stem>_<k>.png    (the source label values, unchanged)
    OUT_DIR/crops.txt               (one crop stem per line, in source order)

which ``FiveCropDataset`` reads (labels are mapped at load time by the same
``STEGORemapLabels`` as the source). The run is resumable (an image whose five
crops exist is skipped, files are written atomically), parallel
(``--workers``) and shows a progress bar. An image that cannot be decoded
(truncated, empty, not an image) is named in a warning, left out of
``crops.txt`` and counted; a label map that is missing or of another size
stops the run (a wrong ``--ann-dir``), keeping the crops already written. Step 2 is
``tools/stego/precompute_knns.py``; see ``configs/stego/README.md``.

Usage:
    python tools/stego/five_crop.py --img-dir data/cocostuff/images/train2017 \\
        --ann-dir data/cocostuff/annotations/train2017 \\
        --img-list data/cocostuff/curated/train2017/Coco164kFull_Stuff_Coarse.txt \\
        --out-dir data/cocostuff/five_crop_0.5/train2017
"""
import argparse
import json
import os
import os.path as osp
import sys
from contextlib import ExitStack
from multiprocessing import Pool
from typing import List, Optional, Sequence, Tuple

from PIL import Image

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, _ROOT)

from mmuol.localization.stego import five_crop_boxes  # noqa: E402
from mmuol.utils.image_io import read_image  # noqa: E402

NUM_CROPS = 5


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Five-crop a training set (STEGO's "
                                     'crop_datasets.py)')
    parser.add_argument('--img-dir', required=True, help='folder of the source images')
    parser.add_argument('--ann-dir', help='folder of the label maps (optional)')
    parser.add_argument(
        '--img-list',
        help='file with one image stem per line (e.g. '
        "STEGO's curated COCO list); default: every image in --img-dir")
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--crop-ratio', type=float, default=0.5, help='crop side / image side')
    parser.add_argument('--img-suffix', default='.jpg', help='source image suffix')
    parser.add_argument(
        '--seg-suffix',
        default='.png',
        help='source label suffix (e.g. '
        '_gtFine_labelIds.png for Cityscapes)')
    parser.add_argument(
        '--quality',
        type=int,
        default=75,
        help='JPEG quality of the crops '
        "(75 = PIL's default, what STEGO wrote)")
    parser.add_argument('--workers', type=int, default=4, help='parallel processes')
    return parser.parse_args(argv)


def list_stems(img_dir: str, img_suffix: str, img_list: Optional[str]) -> List[str]:
    """Image stems in processing order (the list file's, else sorted)."""
    if img_list:
        if not osp.isfile(img_list):
            raise FileNotFoundError(f'--img-list {img_list} does not exist')
        with open(img_list) as f:
            stems = [line.strip() for line in f if line.strip()]
        stems = [s[:-len(img_suffix)] if s.endswith(img_suffix) else s for s in stems]
    else:
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'--img-dir {img_dir} is not a folder')
        stems = sorted(f[:-len(img_suffix)] for f in os.listdir(img_dir) if f.endswith(img_suffix))
    if not stems:
        raise ValueError(f'no image found ({img_list or img_dir}, suffix {img_suffix!r})')
    return stems


def _save(img: Image.Image, path: str, **kwargs) -> None:
    tmp = path + '.part'
    img.save(tmp, **kwargs)
    os.replace(tmp, path)


def crop_one(job: Tuple[str, dict]) -> Tuple[str, bool, Optional[str]]:
    """Write the five crops of one image (skipped if already complete).

    Returns:
        tuple[str, bool, str | None]: the stem, whether anything was written
        and, for an image that cannot be decoded, why.
    """
    stem, opt = job
    outs = [osp.join(opt['out_dir'], 'img', f'{stem}_{k}.jpg') for k in range(NUM_CROPS)]
    segs = [osp.join(opt['out_dir'], 'label', f'{stem}_{k}.png') for k in range(NUM_CROPS)]
    with_labels = opt['ann_dir'] is not None
    if all(map(osp.isfile, outs)) and (not with_labels or all(map(osp.isfile, segs))):
        return stem, False, None
    img_path = osp.join(opt['img_dir'], stem + opt['img_suffix'])
    try:
        img = Image.fromarray(read_image(img_path, 'rgb'))
    except (OSError, ValueError) as e:
        return stem, False, str(e)
    seg = None
    if with_labels:
        seg_path = osp.join(opt['ann_dir'], stem + opt['seg_suffix'])
        if not osp.isfile(seg_path):
            raise FileNotFoundError(f'label map {seg_path} of {img_path} not found')
        seg = Image.open(seg_path)
        seg.load()
        if seg.size != img.size:
            raise ValueError(f'{seg_path} is {seg.size[1]}x{seg.size[0]} but {img_path} is '
                             f'{img.size[1]}x{img.size[0]} (H x W)')
    try:
        boxes = five_crop_boxes(img.height, img.width, opt['crop_ratio'])
    except ValueError as e:
        raise ValueError(f'{img_path}: {e}') from None
    for k, (top, left, h, w) in enumerate(boxes):
        box = (left, top, left + w, top + h)
        _save(img.crop(box), outs[k], format='JPEG', quality=opt['quality'])
        if seg is not None:
            _save(seg.crop(box), segs[k], format='PNG')
    return stem, True, None


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    from tqdm import tqdm
    if args.ann_dir is not None and not osp.isdir(args.ann_dir):
        raise FileNotFoundError(f'--ann-dir {args.ann_dir} is not a folder')
    stems = list_stems(args.img_dir, args.img_suffix, args.img_list)
    for sub in ('img', 'label') if args.ann_dir else ('img', ):
        os.makedirs(osp.join(args.out_dir, sub), exist_ok=True)
    opt = dict(
        out_dir=args.out_dir,
        img_dir=args.img_dir,
        ann_dir=args.ann_dir,
        img_suffix=args.img_suffix,
        seg_suffix=args.seg_suffix,
        crop_ratio=args.crop_ratio,
        quality=args.quality)
    jobs = [(s, opt) for s in stems]
    written, unreadable = 0, {}
    with ExitStack() as stack:
        bar = stack.enter_context(tqdm(total=len(jobs), desc='five-crop', unit='img'))
        results = map(crop_one, jobs)
        if args.workers > 1:
            pool = stack.enter_context(Pool(args.workers))
            results = pool.imap(crop_one, jobs, chunksize=16)
        for stem, new, error in results:
            written += new
            if error is not None:
                unreadable[stem] = error
                bar.write(f'warning: skipping {error}')
            bar.update()
    stems = [s for s in stems if s not in unreadable]
    with open(osp.join(args.out_dir, 'crops.txt'), 'w') as f:
        f.writelines(f'{s}_{k}\n' for s in stems for k in range(NUM_CROPS))
    with open(osp.join(args.out_dir, 'five_crop.json'), 'w') as f:
        json.dump(
            dict(
                img_dir=args.img_dir,
                ann_dir=args.ann_dir,
                img_list=args.img_list,
                crop_ratio=args.crop_ratio,
                quality=args.quality,
                images=len(stems),
                crops=len(stems) * NUM_CROPS,
                unreadable_images=sorted(unreadable)),
            f,
            indent=1)
    print(f'{len(stems)} images -> {len(stems) * NUM_CROPS} crops in {args.out_dir} '
          f'({written} images cropped now, {len(stems) - written} already done' +
          (f', {len(unreadable)} unreadable skipped' if unreadable else '') + ')')


if __name__ == '__main__':
    try:
        main()
    except (OSError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
