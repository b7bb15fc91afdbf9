# Copyright (c) mmuol contributors. All rights reserved.
"""Generate MaskCut pseudo-labels (CutLER) for an image folder, at scale.

The official pipeline (resize to 480x480, DINO ViT-B/8 last-block keys,
MaskCut with N = 3 and tau = 0.15, dense CRF, hole filling, IoU gate 0.5,
resize back) with a batched backbone, the NCut and the CRF on the GPU when
there is one, images decoded in DataLoader workers, and a COCO json with
compressed RLE masks and correct image sizes
(``mmuol.pseudo_labels.maskcut_pipeline``; method notes in
``configs/cutler/README.md``).

Nothing is lost when a job dies: results are committed atomically every
``--chunk-size`` images under ``--work-dir`` (default ``OUT.parts``) and a
re-run of the same command skips them; the final json is byte-identical to
an uninterrupted run. A re-run with other arguments in the same work dir is
refused. An unreadable image is logged, counted (``info`` of the json) and
skipped.

Scale: ``--shard i/n`` splits the images over independent jobs and
``--launcher pytorch`` (torchrun) over the ranks of a job; the split is
deterministic (contiguous ranges of chunks) and each shard writes its own
``shard-*.json``. A single job merges its ranks' shards into ``--out``;
after several jobs, ``tools/maskcut/merge.py`` checks that all shards used
the same arguments and writes the json (byte-identical to a single run).

Speed: without a GPU, ``--cpu-workers N`` runs the NCut + CRF of N images at
once in single-threaded processes (about one image per core-second for
60x60 keys, against ~12-20 s for the official dense ``eigh`` + per-mask CRF,
see ``tools/analysis/benchmark_maskcut_pipeline.py``).

Examples::

    # ImageNet train (<wnid>/<file>.JPEG), one GPU
    python tools/maskcut/generate.py data/imagenet/train \\
        --checkpoint dino_vitbase8_pretrain.pth --out imagenet_train_maskcut.json
    # 4 GPUs of one machine (ranks split the work, rank 0 writes the json)
    torchrun --nproc_per_node 4 tools/maskcut/generate.py data/imagenet/train \\
        --launcher pytorch --checkpoint dino_vitbase8_pretrain.pth --out out.json
    # 100 independent jobs (same arguments), then one merge
    python tools/maskcut/generate.py data/imagenet/train --shard 7/100 \\
        --checkpoint dino_vitbase8_pretrain.pth --out out.json
    python tools/maskcut/merge.py out.json.parts --out out.json
    # a list of images (paths relative to --img-root), 16 CPU cores, no CRF
    python tools/maskcut/generate.py list.txt --img-root data/images --no-crf \\
        --cpu-workers 16 --checkpoint dino_vitbase8_pretrain.pth --out out.json
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from collections import deque
from typing import List, Optional, Sequence

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, _ROOT)

#: Test hook: seconds to sleep before each chunk commit (to kill a run mid-way).
_COMMIT_DELAY_ENV = 'MMUOL_MASKCUT_COMMIT_DELAY'


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument(
        'images',
        help='image folder (ImageNet train layout <class>/<image> by default, see '
        '--layout) or a .txt file listing image paths relative to --img-root')
    parser.add_argument('--out', required=True, help='final COCO json')
    parser.add_argument(
        '--work-dir',
        help='progress and shard files (default: OUT.parts); re-running the same '
        'command resumes from it')
    parser.add_argument(
        '--layout',
        default='imagenet',
        choices=['imagenet', 'flat', 'recursive'],
        help='how images lie in the folder')
    parser.add_argument(
        '--img-root', help='root of the paths in a .txt list (default: the '
        "list's folder)")
    parser.add_argument(
        '--arch',
        default='dino_vitb8',
        help='DINOViT preset or a JSON dict of VisionTransformer arguments')
    parser.add_argument(
        '--checkpoint',
        help="local DINO checkpoint (.pth); default: the arch's official "
        'weights (downloaded)')
    parser.add_argument(
        '--fixed-size',
        type=int,
        default=480,
        help='images are resized to a '
        'square of this side (aspect ratio not kept), as CutLER does')
    parser.add_argument('--num-masks', '-N', type=int, default=3, help='MaskCut stages')
    parser.add_argument('--tau', type=float, default=0.15, help='patch graph threshold')
    parser.add_argument(
        '--solver', default='auto', choices=['auto', 'dense', 'lanczos'], help='NCut eigensolver')
    parser.add_argument(
        '--no-crf', action='store_true', help='keep the raw MaskCut masks (no CRF, no IoU gate)')
    parser.add_argument('--crf-backend', default='builtin', choices=['builtin', 'pydensecrf'])
    parser.add_argument('--batch-size', type=int, default=8, help='backbone batch size')
    parser.add_argument(
        '--chunk-size',
        type=int,
        default=64,
        help='images per committed chunk (a multiple of the batch size is best)')
    parser.add_argument('--workers', type=int, default=4, help='DataLoader decoding workers')
    parser.add_argument(
        '--cpu-workers',
        type=int,
        default=0,
        help='processes running the NCut + CRF of several images at once (machines without '
        'GPU: about the number of cores); 0: in the main process')
    parser.add_argument('--device', help='default: cuda (this rank\'s GPU) if available, else cpu')
    parser.add_argument('--shard', default='0/1', help='this job\'s share i/n of the images')
    parser.add_argument(
        '--launcher',
        default='none',
        choices=['none', 'pytorch', 'slurm'],
        help='split the job over ranks (torchrun: pytorch)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ('batch_size', 'chunk_size', 'fixed_size', 'num_masks'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.workers < 0 or args.cpu_workers < 0:
        parser.error('--workers and --cpu-workers must be >= 0')
    return args


def _arch(text: str):
    if text.strip().startswith('{'):
        try:
            return json.loads(text)
        except ValueError as err:
            raise ValueError(f'--arch {text!r} is not a valid JSON dict ({err})') from None
    return text


def _image_list(args) -> tuple:
    """(root, sorted relative names)."""
    from mmuol.pseudo_labels.maskcut_shards import list_images, read_image_list
    if osp.isfile(args.images):
        root = args.img_root or osp.dirname(osp.abspath(args.images))
        if not osp.isdir(root):
            raise FileNotFoundError(f'--img-root {root} is not a folder')
        return root, read_image_list(args.images)
    if not osp.exists(args.images):
        raise FileNotFoundError(f'image folder or list not found: {args.images}')
    return args.images, list_images(args.images, args.layout)


def _init_dist(launcher: str) -> tuple:
    """(rank, world_size, local_rank) after starting the process group."""
    if launcher == 'none':
        return 0, 1, 0
    import torch
    import torch.distributed as torch_dist
    from mmengine.dist import get_dist_info, init_dist
    if launcher == 'pytorch' and not torch.cuda.is_available():
        # mmengine's launcher selects a CUDA device; on CPU only the
        # barrier is needed, which gloo provides.
        torch_dist.init_process_group(backend='gloo')
    else:
        init_dist(launcher)
    rank, world = get_dist_info()
    return rank, world, int(os.environ.get('LOCAL_RANK', 0))


def _barrier(world: int) -> None:
    if world > 1:
        from mmengine.dist import barrier
        barrier()


def _collate(batch: List[dict]) -> List[dict]:
    return batch


def _batches(work, chunks: Sequence[int], batch_size: int) -> List[List[int]]:
    """Backbone batches: aligned to each chunk's start, never across chunks."""
    out = []
    for c in chunks:
        idx = list(work.chunk_images(c))
        out.extend(idx[i:i + batch_size] for i in range(0, len(idx), batch_size))
    return out


def run(args: argparse.Namespace) -> dict:
    """Generate this job's (and rank's) share; merge when it is everything.

    Returns:
        dict: Counts of this rank's shard (``images``, ``annotations``,
        ``unreadable``, ``processed`` in this run) and ``out`` (the final
        json path, or None when other jobs still have to finish).
    """
    import torch
    from tqdm import tqdm

    from mmuol.models.backbones import DINOViT
    from mmuol.models.backbones.dino_vit_archs import ARCH_ZOO
    from mmuol.pseudo_labels.coco_json import dump_json
    from mmuol.pseudo_labels.maskcut_pipeline import (MaskCutImages, MaskCutProcessPool,
                                                      MaskCutPseudoLabeler, MaskCutSettings,
                                                      maskcut_annotations, maskcut_pseudo_masks)
    from mmuol.pseudo_labels.maskcut_shards import (GenerationWorkDir, file_digest,
                                                    generation_record, merge_shard_files,
                                                    parse_shard, shard_chunk_range)

    job, num_jobs = parse_shard(args.shard)
    arch = _arch(args.arch)
    settings = MaskCutSettings(
        fixed_size=args.fixed_size,
        num_masks=args.num_masks,
        tau=args.tau,
        solver=args.solver,
        crf=not args.no_crf,
        crf_backend=args.crf_backend)
    if args.checkpoint is not None:
        if not osp.isfile(args.checkpoint):
            raise FileNotFoundError(f'--checkpoint {args.checkpoint} not found')
        checkpoint_id = file_digest(args.checkpoint)
    elif isinstance(arch, str) and arch in ARCH_ZOO:
        checkpoint_id = ARCH_ZOO[arch]['checkpoint']
    else:
        raise ValueError(f'--arch {args.arch} has no official weights: pass --checkpoint')
    root, names = _image_list(args)
    gen_record = generation_record(settings.to_dict(), arch, checkpoint_id, names, args.batch_size,
                                   args.chunk_size)
    rank, world, local_rank = _init_dist(args.launcher)
    work_dir = args.work_dir or args.out + '.parts'
    work = GenerationWorkDir(work_dir, gen_record)
    c0, c1 = shard_chunk_range(work.num_chunks, job, num_jobs, rank, world)
    work.remove_stale_temporaries(c0, c1)
    pending = [c for c in range(c0, c1) if not work.is_committed(c)]
    shard_images = sum(len(work.chunk_images(c)) for c in range(c0, c1))
    done_images = shard_images - sum(len(work.chunk_images(c)) for c in pending)

    if args.device:
        device = torch.device(args.device)
    elif torch.cuda.is_available():
        device = torch.device('cuda', local_rank)
    else:
        device = torch.device('cpu')
    prefix = f'[rank {rank}/{world}] ' if world > 1 else ''
    if rank == 0:
        print(
            f'{prefix}{len(names)} images in {work.num_chunks} chunks; this job: shard '
            f'{job}/{num_jobs}; work dir {work_dir}',
            flush=True)
    if rank == 0 and pending and device.type == 'cpu' and not args.cpu_workers:
        print(
            f'Running on the CPU: --cpu-workers {os.cpu_count()} would run the NCut + CRF of '
            'several images at once.',
            flush=True)
    processed = 0
    if pending:
        init_cfg = dict(type='Pretrained', checkpoint=args.checkpoint or 'default')
        backbone = DINOViT(arch=arch, init_cfg=init_cfg).to(device).eval()
        labeler = MaskCutPseudoLabeler(backbone, settings, device)
        dataset = MaskCutImages(root, names, settings.fixed_size, backbone.patch_size)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=_batches(work, pending, args.batch_size),
            num_workers=args.workers,
            collate_fn=_collate,
            pin_memory=False)
        delay = float(os.environ.get(_COMMIT_DELAY_ENV, 0) or 0)
        pool = MaskCutProcessPool(settings, args.cpu_workers) if args.cpu_workers else None
        max_inflight = 4 * args.cpu_workers + args.batch_size
        results: dict = {}  # index -> record, or (item, future) while in a worker
        inflight: deque = deque()
        chunk_iter = iter(pending)
        chunk = next(chunk_iter)
        bar = tqdm(
            total=shard_images,
            initial=done_images,
            unit='img',
            dynamic_ncols=True,
            desc=f'{prefix}MaskCut',
            disable=rank != 0 and world > 1,
            file=sys.stderr)

        def image_record(item: dict, masks: list) -> dict:
            anns = maskcut_annotations(masks, image_id=item['index'] + 1)
            bar.update(1)
            return dict(
                index=item['index'],
                file_name=item['file_name'],
                height=item['hw'][0],
                width=item['hw'][1],
                annotations=[{
                    k: v
                    for k, v in ann.items() if k not in ('id', 'image_id')
                } for ann in anns])

        def resolve(index: int) -> None:
            value = results[index]
            if isinstance(value, tuple):
                results[index] = image_record(value[0], value[1].result())

        def commit_ready(block: bool) -> None:
            # Chunks are committed in order, each once all its images are done.
            nonlocal chunk
            while chunk is not None:
                indices = list(work.chunk_images(chunk))
                if not all(i in results for i in indices):
                    return
                busy = [i for i in indices if isinstance(results[i], tuple)]
                if not block and not all(results[i][1].done() for i in busy):
                    return
                for i in busy:
                    resolve(i)
                if delay:
                    time.sleep(delay)
                work.commit_chunk(chunk, [results.pop(i) for i in indices])
                chunk = next(chunk_iter, None)

        start = time.time()
        try:
            for batch in loader:
                ok = [item for item in batch if item['error'] is None]
                if ok:
                    keys, grid_hw = labeler.keys([item['image'] for item in ok])
                for n, item in enumerate(ok):
                    meta = {k: item[k] for k in ('index', 'file_name', 'hw')}
                    if pool is None:
                        results[item['index']] = image_record(
                            meta,
                            maskcut_pseudo_masks(keys[n], grid_hw, item['image'], item['hw'],
                                                 settings))
                    else:
                        results[item['index']] = (meta,
                                                  pool.submit(keys[n], grid_hw, item['image'],
                                                              item['hw']))
                        inflight.append(item['index'])
                for item in batch:
                    if item['error'] is not None:
                        bar.write(
                            f'{prefix}WARNING: skipping unreadable image '
                            f'{item["file_name"]}: {item["error"]}',
                            file=sys.stderr)
                        results[item['index']] = dict(
                            index=item['index'], file_name=item['file_name'], error=item['error'])
                        bar.update(1)
                processed += len(batch)
                # Bound the images held in memory while workers catch up.
                while len(inflight) > max_inflight:
                    idx = inflight.popleft()
                    if idx in results:
                        resolve(idx)
                commit_ready(block=False)
            commit_ready(block=True)
        finally:
            if pool is not None:
                pool.close()
        bar.close()
        elapsed = time.time() - start
        print(
            f'{prefix}processed {processed} images in {elapsed:.1f} s '
            f'({processed / max(elapsed, 1e-9):.2f} img/s)',
            flush=True)

    env = dict(device=str(device), torch=torch.__version__)
    shard_path, counts = work.write_shard(c0, c1, environment=env)
    counts['processed'] = processed
    if counts['unreadable']:
        print(
            f'{prefix}{counts["unreadable"]} unreadable image(s) skipped (listed in '
            f'{shard_path})',
            flush=True)
    _barrier(world)
    counts['out'] = None
    if num_jobs == 1 and rank == 0:
        paths = [
            work.shard_path(*shard_chunk_range(work.num_chunks, 0, 1, r, world))
            for r in range(world)
        ]
        merged = merge_shard_files(paths)
        dump_json(merged, args.out)
        counts['out'] = args.out
        print(
            f'wrote {args.out}: {len(merged["images"])} images, '
            f'{len(merged["annotations"])} annotations, '
            f'{merged["info"]["num_unreadable_images"]} unreadable image(s) skipped',
            flush=True)
    elif rank == 0:
        print(
            f'shard {job}/{num_jobs} done ({shard_path}). When all {num_jobs} jobs are done: '
            f'python tools/maskcut/merge.py {work_dir} --out {args.out}',
            flush=True)
    _barrier(world)
    return counts


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    if args.launcher != 'none' and 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return run(args)


if __name__ == '__main__':
    from mmuol.models.backbones.dino_vit_archs import WeightsUnavailableError
    try:
        main()
    except (FileNotFoundError, ValueError, WeightsUnavailableError) as err:
        # Bad input (missing files, other arguments in the work dir, no
        # weights offline, ...): the message names the file or argument.
        sys.exit(f'error: {err}')
