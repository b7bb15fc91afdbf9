# Copyright (c) mmuol contributors. All rights reserved.
"""mmuol.pseudo_labels.maskcut_shards: image lists, sharding, chunk/shard files, merge."""
import json

import numpy as np
import pytest

from mmuol.pseudo_labels.coco_json import annotations_from_masks, dump_json
from mmuol.pseudo_labels.maskcut_shards import (GenerationWorkDir, ShardError, generation_record,
                                                image_list_digest, list_images, merge_shard_files,
                                                num_chunks, parse_shard, read_image_list,
                                                shard_chunk_range)


@pytest.mark.parametrize('total', [0, 1, 5, 17])
@pytest.mark.parametrize('jobs, world', [(1, 1), (2, 1), (3, 2), (4, 3), (20, 1)])
def test_shards_tile_the_chunks(total, jobs, world):
    covered = []
    for job in range(jobs):
        job_range = shard_chunk_range(total, job, jobs)
        ranks = [shard_chunk_range(total, job, jobs, r, world) for r in range(world)]
        assert ranks[0][0] == job_range[0] and ranks[-1][1] == job_range[1]
        for c0, c1 in ranks:
            covered.extend(range(c0, c1))
    assert covered == list(range(total))
    assert shard_chunk_range(10, 1, 2) == (5, 10)
    assert shard_chunk_range(10, 1, 2, 1, 2) == (7, 10)


def test_parse_shard():
    assert parse_shard('3/8') == (3, 8)
    for bad in ('3', '8/8', '-1/2', 'a/b', '1/0'):
        with pytest.raises(ValueError, match='--shard'):
            parse_shard(bad)
    assert num_chunks(10, 4) == 3 and num_chunks(0, 4) == 0


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'x')


def test_list_images_layouts(tmp_path):
    for name in ('n2/b.JPEG', 'n2/a.jpeg', 'n1/z.png', 'n1/notes.txt', 'n1/.hidden.jpg',
                 'n1/deep/x.jpg', 'top.jpg'):
        _touch(tmp_path / name)
    assert list_images(str(tmp_path)) == ['n1/z.png', 'n2/a.jpeg', 'n2/b.JPEG']
    assert list_images(str(tmp_path), 'flat') == ['top.jpg']
    assert list_images(str(tmp_path), 'recursive') == [
        'n1/deep/x.jpg', 'n1/z.png', 'n2/a.jpeg', 'n2/b.JPEG', 'top.jpg'
    ]
    flat = tmp_path / 'flat'
    _touch(flat / 'a.jpg')
    with pytest.raises(ValueError, match='pass --layout flat'):
        list_images(str(flat))
    with pytest.raises(FileNotFoundError, match='image folder not found'):
        list_images(str(tmp_path / 'nope'))


def test_read_image_list(tmp_path):
    lst = tmp_path / 'list.txt'
    lst.write_text('# comment\nb/2.jpg\n\na\\1.jpg\n')
    assert read_image_list(str(lst)) == ['a/1.jpg', 'b/2.jpg']
    lst.write_text('a.jpg\na.jpg\n')
    with pytest.raises(ValueError, match="names 'a.jpg' twice"):
        read_image_list(str(lst))
    lst.write_text('/abs/a.jpg\n')
    with pytest.raises(ValueError, match=r'list.txt:1: .* relative to the image root'):
        read_image_list(str(lst))
    lst.write_text('\n')
    with pytest.raises(ValueError, match='is empty'):
        read_image_list(str(lst))


NAMES = ['a/0.jpg', 'a/1.jpg', 'b/2.jpg', 'b/3.jpg', 'c/4.jpg']


def _record(**overrides):
    settings = dict(tau=0.15, num_masks=3)
    settings.update(overrides.pop('settings', {}))
    args = dict(
        arch='dino_vitb8', checkpoint_id='sha256:00', image_names=NAMES, batch_size=2, chunk_size=2)
    args.update(overrides)
    return generation_record(settings, **args)


def _records(work, chunk):
    """Image i: unreadable if i == 3, else i % 3 square masks."""
    out = []
    for i in work.chunk_images(chunk):
        if i == 3:
            out.append(dict(index=i, file_name=NAMES[i], error='ValueError: broken'))
            continue
        masks = np.zeros((i % 3, 6, 8), bool)
        for k in range(i % 3):
            masks[k, k:k + 2, k:k + 3] = True
        anns = annotations_from_masks(masks, image_id=i + 1, first_id=1)
        out.append(
            dict(
                index=i,
                file_name=NAMES[i],
                height=6,
                width=8,
                annotations=[{
                    k: v
                    for k, v in a.items() if k not in ('id', 'image_id')
                } for a in anns]))
    return out


def test_work_dir_chunks_shards_and_merge(tmp_path):
    work = GenerationWorkDir(str(tmp_path / 'w'), _record())
    assert work.num_chunks == 3 and list(work.chunk_images(2)) == [4]
    assert json.loads((tmp_path / 'w' / 'manifest.json').read_text())['generation'] == _record()
    assert work.load_chunk(0) is None
    for c in range(3):
        work.commit_chunk(c, _records(work, c))
    assert work.load_chunk(1) == _records(work, 1)
    with pytest.raises(ValueError, match='must hold images'):
        work.commit_chunk(0, _records(work, 1))

    # Reopening with the same arguments resumes; other arguments are refused.
    assert GenerationWorkDir(str(tmp_path / 'w'), _record()).is_committed(2)
    with pytest.raises(ShardError, match=r'settings\.tau: 0\.15 vs 0\.2.*another --work-dir'):
        GenerationWorkDir(str(tmp_path / 'w'), _record(settings=dict(tau=0.2)))
    with pytest.raises(ShardError, match='batch_size: 2 vs 4'):
        GenerationWorkDir(str(tmp_path / 'w'), _record(batch_size=4))

    one, counts = work.write_shard(0, 3)
    assert counts == dict(images=4, annotations=1 + 2 + 1, unreadable=1)
    a, _ = work.write_shard(0, 1)
    b, _ = work.write_shard(1, 3)
    whole = merge_shard_files([one])
    assert merge_shard_files([b, a]) == whole
    assert [im['id'] for im in whole['images']] == [1, 2, 3, 4]
    assert [im['file_name']
            for im in whole['images']] == ['a/0.jpg', 'a/1.jpg', 'b/2.jpg', 'c/4.jpg']
    assert [(an['id'], an['image_id']) for an in whole['annotations']] == [(1, 2), (2, 3), (3, 3),
                                                                           (4, 4)]
    assert whole['info']['unreadable_images'] == ['b/3.jpg']
    assert whole['info']['maskcut']['image_list_sha256'] == image_list_digest(NAMES)
    with pytest.raises(ShardError, match=r'chunks \[1, 3\) are in no shard file'):
        merge_shard_files([a])
    with pytest.raises(ShardError, match='also covers'):
        merge_shard_files([one, b])


def test_damaged_or_foreign_files_are_refused(tmp_path):
    work = GenerationWorkDir(str(tmp_path / 'w'), _record())
    with pytest.raises(ShardError, match='chunk 0 of shard'):
        work.write_shard(0, 1)
    dump_json(dict(format='x', chunk=0, generation_sha256='other', images=[]), work.chunk_path(0))
    with pytest.raises(ShardError, match='another generation'):
        work.load_chunk(0)
    (tmp_path / 'coco.json').write_text(json.dumps(dict(images=[], annotations=[])))
    with pytest.raises(ShardError, match='not a MaskCut shard file'):
        merge_shard_files([str(tmp_path / 'coco.json')])
    with pytest.raises(ShardError, match='no shard file'):
        merge_shard_files([])


def test_only_own_temporaries_are_removed(tmp_path):
    work = GenerationWorkDir(str(tmp_path / 'w'), _record())
    chunks = tmp_path / 'w' / 'chunks'
    mine = [
        chunks / '.chunk-0000001.json.ab_c.tmp', tmp_path / 'w' / '.shard-0000001-0000003'
        '.json.k9.tmp'
    ]
    others = [
        chunks / '.chunk-0000000.json.zz.tmp', tmp_path / 'w' / '.manifest.json.q1.tmp',
        tmp_path / 'w' / '.shard-0000000-0000001.json.x.tmp'
    ]
    for p in mine + others:
        p.write_text('{')
    assert sorted(work.remove_stale_temporaries(1, 3)) == sorted(map(str, mine))
    assert all(p.exists() for p in others) and not any(p.exists() for p in mine)
