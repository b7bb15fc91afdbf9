# Copyright (c) mmuol contributors. All rights reserved.
"""STEGO's training-set preparation, step 2: the KNN partner table.

For the training set of a STEGO config (the dataset wrapped by
``STEGOKNNPairDataset``), every image is loaded with ``knn_pipeline`` (the
config's, default: ``Resize(224, NEAREST)`` + ``CenterCrop(224)`` as STEGO's
``precompute_knns.py``), passed through the config's frozen backbone
(``STEGOSegmentor.extract_feat``: the features the head is trained on),
averaged over space and L2-normalised; the ``topk`` most cosine-similar images
of every image are written to the wrapper's ``knn_file``::

    nns       (N, topk) int64   row i: neighbours of image i (column 0 = itself)
    img_keys  (N,) str          image paths relative to the image folder (checked
                                by STEGOKNNPairDataset)
    meta      JSON string       config, backbone, feature, pipeline

The run is batched, shows a progress bar and is resumable: descriptors are
saved per chunk of images under ``<knn_file>.parts/`` and reused (after a
check that the dataset and model are the same) when the command is run again.

Usage:
    python tools/stego/precompute_knns.py configs/stego/CONFIG.py \\
        [--out FILE] [--batch-size 64] [--topk 30] [--device cuda] \\
        [--cfg-options key=value ...]
"""
import argparse
import copy
import hashlib
import json
import os
import os.path as osp
import shutil
import sys
from typing import List, Optional, Sequence

import numpy as np
import torch

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, _ROOT)

DEFAULT_KNN_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='STEGOResizeCenterCrop', size=224),
    dict(type='PackSegInputs'),
]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description="KNN table of a STEGO training set (STEGO's "
                                     'precompute_knns.py)')
    parser.add_argument('config', help='STEGO training config')
    parser.add_argument('--out', help='output .npz (default: the knn_file of the config)')
    parser.add_argument('--batch-size', type=int, default=32, help='images per forward')
    parser.add_argument('--chunk', type=int, default=2048, help='images per resumable part file')
    parser.add_argument('--topk', type=int, default=30, help='neighbours kept (30 upstream)')
    parser.add_argument('--num-workers', type=int, default=2, help='dataloader workers')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--keep-parts',
        action='store_true',
        help='keep the per-chunk descriptors after writing the table')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config entries, key=value')
    return parser.parse_args(argv)


def _training_dataset(cfg, out: Optional[str]):
    """(inner dataset config, output path) from the config."""
    ds = copy.deepcopy(cfg.train_dataloader.dataset)
    if ds.get('type') == 'STEGOKNNPairDataset':
        out = out or ds.get('knn_file')
        ds = ds['dataset']
    if not out:
        raise ValueError('no output: the config has no STEGOKNNPairDataset.knn_file; pass --out')
    return ds, out


def _fingerprint(keys: List[str], cfg, pipeline) -> str:
    model = cfg.model
    text = json.dumps(
        dict(
            keys=keys,
            backbone=str(model.get('backbone')),
            feature=model.get('feature', 'feat'),
            pipeline=str(pipeline)),
        sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    import importlib

    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from tqdm import tqdm

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    for mod in cfg.get('custom_imports', {}).get('imports', ['mmuol.seg']):
        importlib.import_module(mod)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import DATASETS, MODELS

    from mmuol.localization.stego import global_descriptors, knn_table
    from mmuol.seg.stego import knn_image_keys

    ds_cfg, out = _training_dataset(cfg, args.out)
    pipeline = cfg.get('knn_pipeline', DEFAULT_KNN_PIPELINE)
    ds_cfg['pipeline'] = pipeline
    dataset = DATASETS.build(ds_cfg)
    num = len(dataset)
    if num < 2:
        raise ValueError(f'the training set of {args.config} has {num} image(s); a KNN table '
                         'needs at least 2')
    keys = knn_image_keys(dataset)
    topk = min(args.topk, num)
    if topk < args.topk:
        print(f'only {num} images: keeping {topk} neighbours instead of {args.topk}')

    parts_dir = out + '.parts'
    os.makedirs(parts_dir, exist_ok=True)
    stamp = _fingerprint(keys, cfg, pipeline)
    stamp_file = osp.join(parts_dir, 'fingerprint.txt')
    if osp.isfile(stamp_file):
        with open(stamp_file) as f:
            if f.read().strip() != stamp:
                raise RuntimeError(f'{parts_dir} holds descriptors of another dataset or model; '
                                   'delete it to start over')
    else:
        with open(stamp_file, 'w') as f:
            f.write(stamp)

    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(args.device).eval()
    chunks = [(s, min(s + args.chunk, num)) for s in range(0, num, args.chunk)]
    done = sum(e - s for s, e in chunks if osp.isfile(osp.join(parts_dir, f'{s:09d}.npy')))
    with tqdm(total=num, initial=done, desc='knn descriptors', unit='img') as bar:
        for start, end in chunks:
            part = osp.join(parts_dir, f'{start:09d}.npy')
            if osp.isfile(part):
                continue
            loader = torch.utils.data.DataLoader(
                torch.utils.data.Subset(dataset, range(start, end)),
                batch_size=args.batch_size,
                num_workers=args.num_workers,
                collate_fn=pseudo_collate)
            descs = []
            with torch.no_grad():
                for batch in loader:
                    data = model.data_preprocessor(batch, False)
                    feats = model.extract_feat(data['inputs'])[0]
                    descs.append(global_descriptors(feats.float()).cpu())
                    bar.update(len(batch['inputs']))
            tmp = part + '.tmp.npy'
            np.save(tmp, torch.cat(descs).numpy())
            os.replace(tmp, part)

    desc = torch.from_numpy(
        np.concatenate([np.load(osp.join(parts_dir, f'{s:09d}.npy'))
                        for s, _ in chunks])).to(args.device)
    nns = knn_table(desc, k=topk).numpy().astype(np.int64)
    meta = dict(
        config=osp.abspath(args.config),
        backbone=str(cfg.model.get('backbone')),
        feature=cfg.model.get('feature', 'feat'),
        pipeline=str(pipeline),
        topk=topk,
        images=num)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    tmp = out + '.tmp.npz'
    np.savez_compressed(tmp, nns=nns, img_keys=np.array(keys), meta=json.dumps(meta))
    os.replace(tmp, out)
    if not args.keep_parts:
        shutil.rmtree(parts_dir)
    self_first = float(np.mean(nns[:, 0] == np.arange(num)))
    print(f'wrote {out}: {num} images x {topk} neighbours (column 0 is the image itself for '
          f'{self_first:.1%} of them)')


if __name__ == '__main__':
    try:
        main()
    except (OSError, ValueError) as err:  # missing crops, bad config values: named
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
