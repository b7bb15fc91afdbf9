# Copyright (c) mmuol contributors. All rights reserved.
"""Resumable, sharded MaskCut pseudo-label generation: the files on disk.

``tools/maskcut/generate.py`` and ``tools/maskcut/merge.py`` are thin
command lines over this module.

**Images.** The image list is sorted (relative POSIX paths), so every job
sees the same list; its SHA-256 is part of the generation arguments.

**Chunks.** The list is cut into fixed chunks of ``chunk_size`` images
(chunk ``c`` = images ``[c * K, (c + 1) * K)``). A chunk is the unit of
work and of progress: once all its images are processed, its results are
written to ``<work_dir>/chunks/chunk-<c>.json`` atomically (temporary file,
fsync, rename). A job killed at any point (``kill -9``) loses at most the
chunks it had not committed; a re-run with the same arguments skips the
committed ones. Backbone batches never straddle chunks, so a chunk's results
do not depend on where a run started (same batches, same floats).

**Shards.** Jobs (``--shard i/n``) and, inside a job, ranks (torchrun,
mmengine dist) each take a contiguous range of whole chunks
(:func:`shard_chunk_range`). When its chunks are done a shard writes its own
file ``<work_dir>/shard-<c0>-<c1>.json`` (a COCO dict whose images keep
their global ids, plus an ``mmuol_shard`` block with the arguments and its
chunk range). :func:`merge_shard_files` checks that the shards used the same
arguments and cover every chunk exactly once, renumbers image and annotation
ids in list order and returns the final COCO dict; a single-job run ends
with the same merge, so its file is byte-identical to the merge of any
sharding of the same work.

**Arguments.** ``<work_dir>/manifest.json`` records the generation arguments
(:func:`generation_record`: MaskCut settings, backbone and checkpoint
digest, batch and chunk size, the image list digest); a re-run with other
arguments in the same work dir is refused instead of mixing results.
"""
import glob
import hashlib
import json
import math
import os
import os.path as osp
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .coco_json import CATEGORY, build_dataset, dump_json

__all__ = [
    'IMAGE_EXTENSIONS', 'FORMAT', 'ShardError', 'list_images', 'read_image_list',
    'image_list_digest', 'file_digest', 'parse_shard', 'shard_chunk_range', 'num_chunks',
    'generation_record', 'record_digest', 'GenerationWorkDir', 'load_shard_file',
    'merge_shard_files'
]

#: File extensions taken as images when listing a folder (case-insensitive).
IMAGE_EXTENSIONS = ('.jpeg', '.jpg', '.png', '.bmp', '.webp', '.tif', '.tiff', '.ppm', '.pgm')

#: Version tag written in manifests, chunk and shard files.
FORMAT = 'mmuol-maskcut-pseudo-labels/1'

LAYOUTS = ('imagenet', 'flat', 'recursive')


class ShardError(ValueError):
    """Shard / chunk / manifest files that cannot be used together."""


# ---------------------------------------------------------------------------
# Image lists
# ---------------------------------------------------------------------------
def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith('.')


def list_images(root: str, layout: str = 'imagenet') -> List[str]:
    """Sorted image paths under ``root``, relative, with ``/`` separators.

    Args:
        root (str): Image folder.
        layout (str): ``'imagenet'`` (ImageNet train: ``<wnid>/<file>``, one
            level of class folders), ``'flat'`` (files directly in ``root``)
            or ``'recursive'`` (every image below ``root``).

    Returns:
        list[str]: Relative paths, sorted.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: Unknown layout, or no image found (the message says
            which layout would find some).
    """
    if layout not in LAYOUTS:
        raise ValueError(f'layout must be one of {LAYOUTS}, got {layout!r}')
    if not osp.isdir(root):
        raise FileNotFoundError(f'image folder not found: {root}')
    names: List[str] = []
    if layout == 'flat':
        names = [e.name for e in os.scandir(root) if e.is_file() and _is_image(e.name)]
    elif layout == 'imagenet':
        for sub in os.scandir(root):
            if sub.is_dir() and not sub.name.startswith('.'):
                names.extend(f'{sub.name}/{e.name}' for e in os.scandir(sub.path)
                             if e.is_file() and _is_image(e.name))
    else:
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith('.')]
            rel = osp.relpath(folder, root)
            prefix = '' if rel == '.' else rel.replace(os.sep, '/') + '/'
            names.extend(prefix + f for f in files if _is_image(f))
    names.sort()
    if not names:
        hint = ''
        if layout == 'imagenet' and any(_is_image(e.name) for e in os.scandir(root)):
            hint = (' (the images lie directly in the folder: pass --layout flat; the default '
                    'layout is ImageNet train, <class folder>/<image>)')
        raise ValueError(f'no image ({", ".join(IMAGE_EXTENSIONS)}) found in {root} with layout '
                         f'{layout!r}{hint}')
    return names


def read_image_list(path: str) -> List[str]:
    """Image paths from a text file, one per line (relative to an image root).

    Blank lines and lines starting with ``#`` are skipped; the list is
    sorted and must not hold duplicates.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: An empty list, an absolute path or a duplicate.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'image list not found: {path}')
    names = []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            name = line.strip()
            if not name or name.startswith('#'):
                continue
            name = name.replace('\\', '/')
            if osp.isabs(name) or name.startswith('../'):
                raise ValueError(f'{path}:{lineno}: {name!r} must be relative to the image root '
                                 '(--img-root)')
            names.append(name)
    names.sort()
    if not names:
        raise ValueError(f'image list {path} is empty')
    for a, b in zip(names, names[1:]):
        if a == b:
            raise ValueError(f'image list {path} names {a!r} twice')
    return names


def image_list_digest(names: Sequence[str]) -> str:
    """SHA-256 of the newline-joined list."""
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode('utf-8'))
        h.update(b'\n')
    return h.hexdigest()


def file_digest(path: str) -> str:
    """``'sha256:<hex>'`` of a file's bytes (identifies a checkpoint wherever
    it is stored)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 22), b''):
            h.update(block)
    return 'sha256:' + h.hexdigest()


# ---------------------------------------------------------------------------
# Sharding
# ---------------------------------------------------------------------------
def parse_shard(text: str) -> Tuple[int, int]:
    """``'i/n'`` -> ``(i, n)`` with ``0 <= i < n``.

    Raises:
        ValueError: Malformed text or out-of-range index.
    """
    try:
        i, n = (int(v) for v in str(text).split('/'))
    except ValueError:
        raise ValueError(f'--shard must look like i/n (e.g. 0/4), got {text!r}') from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f'--shard {text}: need n >= 1 and 0 <= i < n')
    return i, n


def num_chunks(num_images: int, chunk_size: int) -> int:
    """Number of chunks of ``chunk_size`` images covering the list."""
    return int(math.ceil(num_images / chunk_size))


def shard_chunk_range(total_chunks: int,
                      job: int = 0,
                      num_jobs: int = 1,
                      rank: int = 0,
                      world_size: int = 1) -> Tuple[int, int]:
    """Chunks ``[c0, c1)`` of one rank of one job.

    Job ``i`` of ``n`` takes ``[i * C // n, (i + 1) * C // n)``; the ranks of
    a job split its range the same way. Ranges are contiguous, disjoint and
    cover every chunk; some are empty when there are more shards than chunks.

    Returns:
        tuple[int, int]: ``(c0, c1)``.
    """

    def split(begin: int, end: int, k: int, parts: int) -> Tuple[int, int]:
        size = end - begin
        return begin + k * size // parts, begin + (k + 1) * size // parts

    lo, hi = split(0, int(total_chunks), job, num_jobs)
    return split(lo, hi, rank, world_size)


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------
def generation_record(settings: Dict[str, Any], arch: Any, checkpoint_id: str,
                      image_names: Sequence[str], batch_size: int,
                      chunk_size: int) -> Dict[str, Any]:
    """Everything that decides the output, as a json-serialisable dict.

    The batch size is part of it because a batched backbone's floats can
    depend on the batch (GEMM blocking), and a float at the graph threshold
    can flip a patch; the chunk size fixes which images share a batch.

    Args:
        settings (dict): :meth:`MaskCutSettings.to_dict`.
        arch (str | dict): Backbone architecture.
        checkpoint_id (str): :func:`file_digest` of the weights, or the
            preset/URL when the default weights are used.
        image_names (Sequence[str]): The sorted image list.
        batch_size (int): Backbone batch size.
        chunk_size (int): Images per chunk.

    Returns:
        dict: The record (no paths, no device: shards from different machines
        compare equal).
    """
    return dict(
        settings=dict(settings),
        arch=arch,
        checkpoint=str(checkpoint_id),
        num_images=len(image_names),
        image_list_sha256=image_list_digest(image_names),
        batch_size=int(batch_size),
        chunk_size=int(chunk_size))


def record_digest(record: Dict[str, Any]) -> str:
    """SHA-256 of a record's canonical json."""
    text = json.dumps(record, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def _record_differences(a: Dict[str, Any], b: Dict[str, Any], prefix: str = '') -> List[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict) and key == 'settings':
            out.extend(_record_differences(va, vb, prefix=f'{key}.'))
        elif va != vb:
            out.append(f'{prefix}{key}: {json.dumps(va)} vs {json.dumps(vb)}')
    return out


def _read_json(path: str) -> Any:
    with open(path, encoding='utf-8') as f:
        return json.load(f)


# ---------------------------------------------------------------------------
# Work dir: manifest, chunks, shard files
# ---------------------------------------------------------------------------
class GenerationWorkDir:
    """The on-disk progress of one generation (one set of arguments).

    Args:
        path (str): Work dir (created if needed).
        record (dict): :func:`generation_record` of this run.

    Raises:
        ShardError: The work dir holds a manifest of other arguments.
    """

    def __init__(self, path: str, record: Dict[str, Any]) -> None:
        self.path = path
        self.record = record
        self.digest = record_digest(record)
        self.chunk_size = int(record['chunk_size'])
        self.num_images = int(record['num_images'])
        self.num_chunks = num_chunks(self.num_images, self.chunk_size)
        os.makedirs(osp.join(path, 'chunks'), exist_ok=True)
        self._check_or_write_manifest()

    # -- manifest ----------------------------------------------------------
    @property
    def manifest_path(self) -> str:
        return osp.join(self.path, 'manifest.json')

    def _check_or_write_manifest(self) -> None:
        if osp.isfile(self.manifest_path):
            try:
                old = _read_json(self.manifest_path)
            except ValueError as err:
                raise ShardError(f'{self.manifest_path} is not valid json ({err}); delete the work '
                                 'dir to start over') from None
            old_record = old.get('generation') if isinstance(old, dict) else None
            if not isinstance(old_record, dict) or old.get('format') != FORMAT:
                raise ShardError(f'{self.manifest_path} is not a manifest of this tool '
                                 f'({FORMAT}); use another --work-dir')
            if old_record != self.record:
                diff = '; '.join(_record_differences(old_record, self.record))
                raise ShardError(
                    f'work dir {self.path} holds pseudo-labels generated with other arguments '
                    f'(stored vs now: {diff}). Re-run with the same arguments to resume, or pass '
                    'another --work-dir (or delete this one) to start over.')
            return
        dump_json(dict(format=FORMAT, generation=self.record), self.manifest_path)

    def remove_stale_temporaries(self, c0: int, c1: int) -> List[str]:
        """Delete what a job killed inside an atomic write left behind: the
        temporary files of chunks ``[c0, c1)`` and of their shard file.

        Only the owner of a range writes its files, so other jobs or ranks
        sharing the work dir are never disturbed.

        Returns:
            list[str]: The removed files.
        """
        names = {osp.basename(self.chunk_path(c)) for c in range(c0, c1)}
        removed = []
        for folder, target in ((osp.join(self.path,
                                         'chunks'), None), (self.path,
                                                            osp.basename(self.shard_path(c0, c1)))):
            for tmp in glob.glob(osp.join(folder, '.*.tmp')):
                # dump_json's temporaries: '.<name>.<random>.tmp'
                base = osp.basename(tmp)[1:].rsplit('.', 2)[0]
                if (base == target) if target else (base in names):
                    try:
                        os.remove(tmp)
                        removed.append(tmp)
                    except OSError:
                        pass
        return removed

    # -- chunks --------------------------------------------------------------
    def chunk_images(self, chunk: int) -> range:
        """Global image indices of a chunk."""
        return range(chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, self.num_images))

    def chunk_path(self, chunk: int) -> str:
        return osp.join(self.path, 'chunks', f'chunk-{chunk:07d}.json')

    def load_chunk(self, chunk: int) -> Optional[List[dict]]:
        """A committed chunk's image records, or None if not committed.

        Raises:
            ShardError: The file belongs to other arguments or is damaged.
        """
        path = self.chunk_path(chunk)
        if not osp.isfile(path):
            return None
        try:
            data = _read_json(path)
        except ValueError as err:
            raise ShardError(f'{path} is damaged ({err}); delete it to recompute the chunk')
        if not isinstance(data, dict) or data.get('generation_sha256') != self.digest \
                or data.get('chunk') != chunk:
            raise ShardError(f'{path} was written by another generation (arguments differ); '
                             'use another --work-dir')
        records = data['images']
        if [r['index'] for r in records] != list(self.chunk_images(chunk)):
            raise ShardError(f'{path} does not hold exactly the images of chunk {chunk}')
        return records

    def is_committed(self, chunk: int) -> bool:
        return osp.isfile(self.chunk_path(chunk))

    def commit_chunk(self, chunk: int, records: List[dict]) -> None:
        """Write a chunk atomically.

        Args:
            chunk (int): Chunk index.
            records (list[dict]): One record per image of the chunk, in
                order: ``{index, file_name, height, width, annotations}`` or
                ``{index, file_name, error}`` for an unreadable image.
        """
        indices = [r['index'] for r in records]
        if indices != list(self.chunk_images(chunk)):
            raise ValueError(f'chunk {chunk} must hold images {list(self.chunk_images(chunk))}, '
                             f'got {indices}')
        dump_json(
            dict(format=FORMAT, chunk=chunk, generation_sha256=self.digest, images=records),
            self.chunk_path(chunk))

    # -- shard files ---------------------------------------------------------
    def shard_path(self, c0: int, c1: int) -> str:
        return osp.join(self.path, f'shard-{c0:07d}-{c1:07d}.json')

    def write_shard(self,
                    c0: int,
                    c1: int,
                    environment: Optional[Dict[str, Any]] = None) -> Tuple[str, Dict[str, int]]:
        """Gather committed chunks ``[c0, c1)`` into the shard file.

        Returns:
            tuple[str, dict]: The path and counts (``images``,
            ``annotations``, ``unreadable``).

        Raises:
            ShardError: A chunk of the range is not committed.
        """
        images, annotations, unreadable = [], [], []
        for c in range(c0, c1):
            records = self.load_chunk(c)
            if records is None:
                raise ShardError(f'chunk {c} of shard [{c0}, {c1}) is not committed '
                                 f'({self.chunk_path(c)} is missing)')
            for rec in records:
                if 'error' in rec:
                    unreadable.append(dict(file_name=rec['file_name'], error=rec['error']))
                    continue
                image_id = rec['index'] + 1
                images.append(
                    dict(
                        id=image_id,
                        file_name=rec['file_name'],
                        height=rec['height'],
                        width=rec['width']))
                for ann in rec['annotations']:
                    annotations.append(dict(ann, id=len(annotations) + 1, image_id=image_id))
        first = c0 * self.chunk_size
        last = min(c1 * self.chunk_size, self.num_images)
        shard = build_dataset(images, annotations, info=dict(description='MaskCut shard (mmuol)'))
        shard['mmuol_shard'] = dict(
            format=FORMAT,
            generation=self.record,
            generation_sha256=self.digest,
            chunks=[c0, c1],
            images=[first, max(first, last)],
            unreadable=unreadable,
            environment=dict(environment or {}))
        path = self.shard_path(c0, c1)
        dump_json(shard, path)
        return path, dict(
            images=len(images), annotations=len(annotations), unreadable=len(unreadable))


# ---------------------------------------------------------------------------
# Merge
# ---------------------------------------------------------------------------
def load_shard_file(path: str) -> dict:
    """Read a shard file and check its structure.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ShardError: Not a shard file of this tool.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'shard file not found: {path}')
    try:
        data = _read_json(path)
    except ValueError as err:
        raise ShardError(f'{path} is not valid json ({err})') from None
    meta = data.get('mmuol_shard') if isinstance(data, dict) else None
    if not isinstance(meta, dict) or meta.get('format') != FORMAT:
        raise ShardError(f'{path} is not a MaskCut shard file of this tool ({FORMAT}); shard '
                         'files are the shard-*.json in the generator\'s work dir')
    for key in ('generation', 'chunks', 'unreadable'):
        if key not in meta:
            raise ShardError(f'{path}: mmuol_shard has no {key!r}')
    return data


def merge_shard_files(paths: Iterable[str], info: Optional[dict] = None) -> dict:
    """Merge shard files into the final COCO dict.

    Checks that every shard used the same generation arguments and that
    their chunk ranges tile ``[0, num_chunks)`` exactly; renumbers image ids
    ``1..`` in list order (unreadable images get none) and annotation ids
    ``1..`` in image order. The result depends only on the shards' contents,
    not on how the work was split.

    Args:
        paths (Iterable[str]): Shard files, any order.
        info (dict, optional): Extra ``info`` entries.

    Returns:
        dict: COCO dict; ``info`` holds the generation arguments and the
        unreadable images' file names.

    Raises:
        ShardError: Different arguments, missing or overlapping chunks.
    """
    paths = list(paths)
    if not paths:
        raise ShardError('no shard file to merge')
    shards = [(p, load_shard_file(p)) for p in paths]
    ref_path, ref = shards[0]
    record = ref['mmuol_shard']['generation']
    for path, data in shards[1:]:
        other = data['mmuol_shard']['generation']
        if other != record:
            diff = '; '.join(_record_differences(record, other))
            raise ShardError(f'shards were generated with different arguments: {ref_path} vs '
                             f'{path}: {diff}. Merge only shards of one generation.')
    total = num_chunks(int(record['num_images']), int(record['chunk_size']))
    shards.sort(key=lambda item: tuple(item[1]['mmuol_shard']['chunks']))
    expected = 0
    for path, data in shards:
        c0, c1 = data['mmuol_shard']['chunks']
        if c0 != expected:
            if c0 < expected:
                raise ShardError(f'{path} covers chunks [{c0}, {c1}) that another shard file '
                                 f'also covers (up to chunk {expected}); stale shard files of an '
                                 'earlier sharding? Pass only the shard files of one run.')
            raise ShardError(f'chunks [{expected}, {c0}) are in no shard file: a job has not '
                             'finished, or its shard file is missing')
        expected = c1
    if expected != total:
        raise ShardError(f'chunks [{expected}, {total}) are in no shard file: a job has not '
                         'finished, or its shard file is missing')

    images, annotations, unreadable = [], [], []
    for _, data in shards:
        by_image: Dict[int, List[dict]] = {}
        for ann in sorted(data['annotations'], key=lambda a: a['id']):
            by_image.setdefault(ann['image_id'], []).append(ann)
        for img in sorted(data['images'], key=lambda im: im['id']):
            new_id = len(images) + 1
            images.append(dict(img, id=new_id))
            for ann in by_image.get(img['id'], []):
                annotations.append(dict(ann, id=len(annotations) + 1, image_id=new_id))
        unreadable.extend(u['file_name'] for u in data['mmuol_shard']['unreadable'])
    merged_info = dict(
        description='MaskCut pseudo-labels (mmuol, tools/maskcut/generate.py)',
        maskcut=record,
        num_unreadable_images=len(unreadable),
        unreadable_images=unreadable)
    merged_info.update(info or {})
    return build_dataset(images, annotations, categories=[CATEGORY], info=merged_info)
