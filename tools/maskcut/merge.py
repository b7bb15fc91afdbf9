# Copyright (c) mmuol contributors. All rights reserved.
"""Merge the shard files of ``tools/maskcut/generate.py --shard i/n`` jobs.

Checks that all shards were generated with the same arguments (MaskCut
settings, backbone and checkpoint digest, image list, batch and chunk size)
and that together they cover every image exactly once, renumbers image and
annotation ids in image-list order and writes the final COCO json
atomically. The result is byte-identical to a single-job run.

Example::

    python tools/maskcut/merge.py out.json.parts --out out.json
    python tools/maskcut/merge.py a/shard-*.json b/shard-*.json --out out.json
"""
import argparse
import glob
import os.path as osp
import sys
from typing import List, Optional, Sequence

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, _ROOT)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Merge MaskCut shard files into one COCO json')
    parser.add_argument(
        'inputs', nargs='+', help='shard files (shard-*.json) or work dirs holding them')
    parser.add_argument('--out', required=True, help='final COCO json')
    return parser.parse_args(argv)


def shard_files(inputs: Sequence[str]) -> List[str]:
    """Expand work dirs into their ``shard-*.json`` files (sorted).

    Raises:
        FileNotFoundError: An input does not exist or a dir holds no shard.
    """
    paths = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(glob.glob(osp.join(item, 'shard-*.json')))
            if not found:
                raise FileNotFoundError(f'{item} holds no shard-*.json file (is it the '
                                        "generator's --work-dir?)")
            paths.extend(found)
        elif osp.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f'shard file or work dir not found: {item}')
    return sorted(set(paths), key=paths.index)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    from mmuol.pseudo_labels.coco_json import dump_json
    from mmuol.pseudo_labels.maskcut_shards import merge_shard_files
    paths = shard_files(args.inputs)
    merged = merge_shard_files(paths)
    dump_json(merged, args.out)
    print(f'merged {len(paths)} shard file(s) into {args.out}: {len(merged["images"])} images, '
          f'{len(merged["annotations"])} annotations, '
          f'{merged["info"]["num_unreadable_images"]} unreadable image(s) skipped')
    return merged


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
