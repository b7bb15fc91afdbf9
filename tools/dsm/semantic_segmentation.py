# Copyright (c) mmuol contributors. All rights reserved.
"""Deep Spectral Methods: dataset-level semantic pseudo-labels (VOC2012).

Reads the ``pseudo_labels`` section of a DSM semantic config (e.g.
``configs/dsm/dsm_dino-vits16_voc12-semantic.py``) and runs DSM's pipeline
(Melas-Kyriazi et al., CVPR 2022, ``semantic-segmentation/README.md``):

1. **segments** (per image, resumable): the image cropped to a multiple of
   the patch size -> last-block keys of the frozen backbone ->
   ``dsm_eigenvectors`` (K=5) -> ``dsm_multi_region`` (15 segments, the
   border segment is 0 = background) -> ``dsm_segment_boxes`` (erode 2,
   dilate 5) -> the backbone's CLS embedding of every box's image crop.
   Written to ``<out_dir>/segments/<stem>.npz``; images already done are
   skipped when the command is run again.
2. **clusters** (dataset level): the crop embeddings L2-normalised, reduced
   by PCA (32) and clustered by k-means (21 clusters, seed 0); written to
   ``<out_dir>/clusters.npz``.
3. **semantic maps**: every segment takes its cluster id (``+
   cluster_offset``), the background stays 0; patch-level PNGs in
   ``<out_dir>/semantic/<stem>.png`` (and, with ``crf=True``, full-resolution
   maps refined by DSM's dense CRF in ``<out_dir>/semantic_crf/``).

With the official ``cluster_offset=0`` cluster 0 shares id 0 with the
background (as ``extract_semantic_segmentations``), which keeps 21 ids for
21 VOC classes (Hungarian matching); ``cluster_offset=1`` gives every
cluster its own id (then ``num_clusters + 1`` ids: majority vote).
Differences from the official scripts: k-means is mmuol's seeded Lloyd
k-means (sklearn's ``KMeans`` / ``MiniBatchKMeans`` are not used), so
segments and clusters match the official ones only statistically (the
README warns of a ~±4 mIoU seed variance).

Evaluate with ``tools/test.py`` on the same config (``DSMPseudoLabelDataset``
+ ``PrecomputedSegmentor`` + ``HungarianIoUMetric(matching='max_iou')``).

Usage:
    python tools/dsm/semantic_segmentation.py CONFIG [--device cuda]
        [--cfg-options pseudo_labels.out_dir=DIR ...]
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, _ROOT)

_IMG_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')
_DEFAULTS = dict(
    img_list=None,
    eigs=dict(
        K=5,
        which_matrix='laplacian',
        image_color_lambda=0.0,
        image_downsample_factor=None,
        solver='auto'),
    segments=dict(num_segments=15, num_erode=2, num_dilate=5, seed=0),
    clusters=dict(pca_dim=32, num_clusters=21, seed=0, cluster_offset=0),
    crf=False)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description="DSM's semantic pseudo-labels (segments -> "
                                     'crop features -> PCA + k-means -> label maps)')
    parser.add_argument('config', help='DSM semantic config (with a pseudo_labels section)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config entries, key=value')
    return parser.parse_args(argv)


def load_settings(config: str, cfg_options: Optional[dict] = None) -> dict:
    """The ``pseudo_labels`` section of a config, defaults filled in."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'pseudo_labels' not in cfg:
        raise KeyError(f'{config} has no pseudo_labels section (see '
                       'configs/dsm/dsm_dino-vits16_voc12-semantic.py)')
    pl = cfg.pseudo_labels.to_dict()
    for key in ('backbone', 'img_dir', 'out_dir'):
        if not pl.get(key):
            raise KeyError(f'{config}: pseudo_labels.{key} is required')
    out = dict(_DEFAULTS)
    for key, value in pl.items():
        if isinstance(out.get(key), dict):
            unknown = set(value) - set(out[key])
            if unknown:
                raise KeyError(f'pseudo_labels.{key}: unknown keys {sorted(unknown)}; accepted: '
                               f'{sorted(out[key])}')
            value = dict(out[key], **value)
        out[key] = value
    return out


def list_images(img_dir: str, img_list: Optional[str]) -> List[str]:
    """Image file names (sorted): those of ``img_list`` (stems or names, one
    per line) or every image in ``img_dir``."""
    if not osp.isdir(img_dir):
        raise FileNotFoundError(f'image folder {img_dir!r} not found (pseudo_labels.img_dir)')
    present = {
        osp.splitext(f)[0]: f
        for f in os.listdir(img_dir) if f.lower().endswith(_IMG_SUFFIXES)
    }
    if img_list is None:
        names = sorted(present.values())
    else:
        if not osp.isfile(img_list):
            raise FileNotFoundError(f'image list {img_list!r} not found (pseudo_labels.img_list)')
        with open(img_list) as f:
            stems = [osp.splitext(ln.strip())[0] for ln in f if ln.strip()]
        missing = [s for s in stems if s not in present]
        if missing:
            raise FileNotFoundError(f'{len(missing)} images of {img_list} are not in {img_dir}, '
                                    f'e.g. {missing[:3]}')
        names = sorted(present[s] for s in stems)
    if not names:
        raise FileNotFoundError(f'no images ({"/".join(_IMG_SUFFIXES)}) in {img_dir}')
    return names


def build_backbone(cfg: dict, device: str):
    from mmuol.models.backbones import DINOViT
    kwargs = {k: v for k, v in cfg.items() if k != 'type'}
    if cfg.get('type', 'DINOViT') != 'DINOViT':
        raise ValueError(f"pseudo_labels.backbone must be a DINOViT, got {cfg.get('type')!r}")
    vit = DINOViT(**kwargs)
    vit.init_weights()
    return vit.eval().to(device)


@torch.no_grad()
def image_segments(vit, rgb: np.ndarray, settings: dict, device: str) -> Dict[str, np.ndarray]:
    """Step 1 for one image: segments, their boxes and crop embeddings."""
    from mmuol.localization.dsm import dsm_eigenvectors, dsm_multi_region, dsm_segment_boxes
    from mmuol.pseudo_labels.maskcut_pipeline import normalize_images
    p = vit.patch_size
    height, width = rgb.shape[:2]
    h, w = height // p, width // p
    if h == 0 or w == 0:
        raise ValueError(f'image of {height}x{width} pixels is smaller than one {p}x{p} patch')
    # ToTensor + ImageNet Normalize, computed on the CPU.
    x = normalize_images(torch.from_numpy(np.ascontiguousarray(rgb))[None]).to(device)
    out = vit.forward_last_block(x[..., :h * p, :w * p], with_qkv=True, with_attn=False)
    eig_cfg = dict(settings['eigs'])
    eigs = dsm_eigenvectors(
        out.patch_keys[0].float().cpu(), (h, w),
        patch_size=p,
        image=rgb if eig_cfg['image_color_lambda'] > 0 else None,
        **eig_cfg)
    seg_cfg = settings['segments']
    n_cells = eigs.grid_hw[0] * eigs.grid_hw[1]
    segmap = dsm_multi_region(
        eigs, num_segments=min(int(seg_cfg['num_segments']), n_cells), seed=seg_cfg['seed'])
    boxes = dsm_segment_boxes(segmap, seg_cfg['num_erode'], seg_cfg['num_dilate'], eigs.cell_size)
    feats = []
    for x0, y0, x1, y1 in boxes.boxes.tolist():
        crop = x[..., y0:y1, x0:x1]
        # DINO's patch embedding drops a partial last patch; so does this crop.
        crop = crop[..., :max(p, crop.shape[-2] // p * p), :max(p, crop.shape[-1] // p * p)]
        tokens = vit.forward_last_block(crop, with_qkv=False, with_attn=False).tokens
        feats.append(tokens[0, 0].float().cpu().numpy())
    dim = int(vit.embed_dims)
    return dict(
        segmap=segmap.numpy().astype(np.uint8),
        segment_indices=boxes.segment_indices.numpy(),
        boxes=boxes.boxes.numpy(),
        features=np.stack(feats).astype(np.float32) if feats else np.zeros((0, dim), np.float32),
        eigenvalues=eigs.eigenvalues.numpy(),
        cell_size=np.array(eigs.cell_size),
        image_hw=np.array([height, width]))


def _save_npz(path: str, arrays: dict) -> None:
    tmp = path + '.tmp.npz'
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)  # a killed run never leaves a truncated file


def _fingerprint(settings: dict) -> str:
    keep = {k: settings[k] for k in ('backbone', 'eigs', 'segments')}
    return json.dumps(keep, sort_keys=True, default=str)


def run_segments(settings: dict, names: List[str], device: str) -> List[str]:
    """Step 1 for every image (skips finished ones). Returns npz paths."""
    from tqdm import tqdm

    from mmuol.utils.image_io import read_image
    seg_dir = osp.join(settings['out_dir'], 'segments')
    os.makedirs(seg_dir, exist_ok=True)
    stamp = osp.join(seg_dir, 'settings.json')
    fingerprint = _fingerprint(settings)
    if osp.isfile(stamp):
        with open(stamp) as f:
            if f.read() != fingerprint:
                raise RuntimeError(f'{seg_dir} holds segments made with other settings '
                                   f'(see {stamp}); use another pseudo_labels.out_dir or '
                                   'delete the folder')
    else:
        with open(stamp, 'w') as f:
            f.write(fingerprint)
    paths = [osp.join(seg_dir, osp.splitext(n)[0] + '.npz') for n in names]
    todo = [(n, p) for n, p in zip(names, paths) if not osp.isfile(p)]
    if len(todo) < len(names):
        print(f'segments: {len(names) - len(todo)} of {len(names)} images already done, '
              'resuming')
    if todo:
        vit = build_backbone(settings['backbone'], device)
        for name, path in tqdm(todo, desc='segments', unit='img'):
            file = osp.join(settings['img_dir'], name)
            rgb = read_image(file, 'rgb')  # errors name the file
            try:
                arrays = image_segments(vit, rgb, settings, device)
            except ValueError as err:
                raise ValueError(f'{file}: {err}') from None
            _save_npz(path, arrays)
    return paths


def run_clusters(settings: dict, seg_paths: List[str]) -> List[np.ndarray]:
    """Step 2: one cluster id per segment, over the whole dataset."""
    from mmuol.localization.dsm import kmeans, pca_reduce
    feats, counts = [], []
    for path in seg_paths:
        with np.load(path) as z:
            feats.append(z['features'])
            counts.append(len(z['features']))
    allf = np.concatenate(feats).astype(np.float64)
    cfg = settings['clusters']
    if len(allf) < cfg['num_clusters']:
        raise ValueError(f'{len(allf)} segments in total, fewer than num_clusters='
                         f"{cfg['num_clusters']}")
    norms = np.linalg.norm(allf, axis=1, keepdims=True)
    allf = allf / np.maximum(norms, 1e-12)
    if cfg['pca_dim']:
        allf = pca_reduce(allf, min(int(cfg['pca_dim']), *allf.shape))
    labels, _ = kmeans(allf, int(cfg['num_clusters']), seed=int(cfg['seed']))
    _save_npz(
        osp.join(settings['out_dir'], 'clusters.npz'),
        dict(labels=labels, counts=np.array(counts), settings=json.dumps(cfg)))
    sizes = np.bincount(labels, minlength=int(cfg['num_clusters']))
    print(f'clusters: {len(labels)} segments of {len(seg_paths)} images -> '
          f"{cfg['num_clusters']} clusters, sizes {sizes.tolist()}")
    return np.split(labels, np.cumsum(counts)[:-1])


def semantic_map(segmap: np.ndarray,
                 segment_indices: np.ndarray,
                 clusters: np.ndarray,
                 offset: int = 0) -> np.ndarray:
    """Segment ids -> cluster ids (+ ``offset``); segment 0 stays 0."""
    ids = np.asarray(segment_indices, dtype=np.int64)
    if (ids == 0).any():
        raise ValueError('segment 0 is the background and has no cluster')
    lut = np.zeros(int(max(segmap.max(), ids.max(initial=0))) + 1, dtype=np.int64)
    lut[ids] = np.asarray(clusters, dtype=np.int64) + offset
    return lut[segmap]


def run_semantic(settings: dict, names: List[str], seg_paths: List[str],
                 clusters: List[np.ndarray]) -> str:
    """Step 3: patch-level semantic maps (and CRF-refined ones)."""
    from PIL import Image
    from tqdm import tqdm

    from mmuol.utils.image_io import read_image
    out_dir = osp.join(settings['out_dir'], 'semantic')
    os.makedirs(out_dir, exist_ok=True)
    crf_dir = osp.join(settings['out_dir'], 'semantic_crf') if settings['crf'] else None
    offset = int(settings['clusters']['cluster_offset'])
    num_ids = int(settings['clusters']['num_clusters']) + offset
    if num_ids > 256:
        raise ValueError(f'{num_ids} label ids do not fit an 8-bit PNG')
    if crf_dir:
        os.makedirs(crf_dir, exist_ok=True)
    for name, path, labels in tqdm(
            list(zip(names, seg_paths, clusters)), desc='semantic maps', unit='img'):
        with np.load(path) as z:
            sem = semantic_map(z['segmap'], z['segment_indices'], labels, offset)
            image_hw = tuple(int(v) for v in z['image_hw'])
            cell = int(z['cell_size'])
        stem = osp.splitext(name)[0]
        Image.fromarray(sem.astype(np.uint8), mode='L').save(osp.join(out_dir, stem + '.png'))
        if crf_dir:
            from mmuol.localization import dsm_crf
            from mmuol.localization.dsm import upsample_patch_labels
            rgb = read_image(osp.join(settings['img_dir'], name), 'rgb')
            full = upsample_patch_labels(sem, cell, image_hw)
            refined = dsm_crf(rgb, full, num_classes=max(num_ids, 2)).numpy()
            Image.fromarray(
                refined.astype(np.uint8), mode='L').save(osp.join(crf_dir, stem + '.png'))
    return out_dir


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    settings = load_settings(args.config, args.cfg_options)
    names = list_images(settings['img_dir'], settings.get('img_list'))
    print(f'{len(names)} images from {settings["img_dir"]} -> {settings["out_dir"]}')
    seg_paths = run_segments(settings, names, args.device)
    clusters = run_clusters(settings, seg_paths)
    out = run_semantic(settings, names, seg_paths, clusters)
    print(f'semantic maps written to {out}; evaluate with: python tools/test.py {args.config}')


if __name__ == '__main__':
    try:
        main()
    except (OSError, ValueError, RuntimeError) as err:
        # A bad image stops the run with its name; the segments already
        # written are kept and a re-run resumes after them.
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
