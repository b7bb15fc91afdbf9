# Copyright (c) mmuol contributors. All rights reserved.
"""tools/maskcut/generate.py and merge.py end to end on drawn images (tiny DINOViT, CPU).

Checked: the json against the core ``maskcut`` + CRF glue re-run on the same features,
boxes/areas/RLE against pycocotools, correct (unswapped) image sizes, an unreadable image
counted and skipped, kill -9 mid-way + resume == uninterrupted run (byte-identical), two
jobs + merge == one job (byte-identical; one job uses worker processes), and the refusals
(other arguments, missing or overlapping shards).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from mmuol.localization import maskcut
from mmuol.localization.dense_crf import batch_maskcut_crf_postprocess
from mmuol.models.backbones import DINOViT
from mmuol.pseudo_labels.maskcut_shards import ShardError
from mmuol.testing.models import TINY_VIT_ARCH
from mmuol.testing.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
GENERATE = ROOT / 'tools' / 'maskcut' / 'generate.py'
MERGE = ROOT / 'tools' / 'maskcut' / 'merge.py'
FIXED = 64  # 8x8 patch grid for the tiny patch-8 ViT
# (folder/file, (H, W), format); 'broken' is not an image.
IMAGES = [('n001/a.JPEG', (48, 64), 'JPEG'), ('n001/b.png', (64, 48), 'PNG'),
          ('n001/c.JPEG', (40, 72), 'JPEG'), ('n002/broken.JPEG', None, None),
          ('n002/d.png', (56, 56), 'PNG'), ('n002/e.JPEG', (72, 40), 'JPEG'),
          ('n003/f.png', (48, 48), 'PNG')]


def _load_tool(path: Path, name: str):
    return load_script(path, name)


generate = _load_tool(GENERATE, 'mmuol_maskcut_generate')
merge = _load_tool(MERGE, 'mmuol_maskcut_merge')


def _draw(height: int, width: int, seed: int):
    """Noisy background, a red rectangle and a white ellipse; returns (image, [their masks])."""
    rng = np.random.default_rng(seed)
    img = rng.integers(20, 90, (height, width, 3), dtype=np.uint8)
    rect = np.zeros((height, width), bool)
    y0, x0 = int(rng.integers(2, height // 3)), int(rng.integers(2, width // 3))
    rect[y0:y0 + height // 3, x0:x0 + width // 3] = True
    yy, xx = np.mgrid[:height, :width]
    ellipse = ((yy - 0.7 * height) / (0.18 * height))**2 + ((xx - 0.7 * width) /
                                                            (0.18 * width))**2 <= 1
    img[rect] = (230, 40, 40)
    img[ellipse & ~rect] = (250, 250, 250)
    return img, [rect, ellipse & ~rect]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('maskcut_gen')
    torch.manual_seed(0)
    ckpt = root / 'tiny.pth'
    torch.save(DINOViT(arch=dict(TINY_VIT_ARCH), frozen=False).state_dict(), ckpt)
    objects = {}
    for seed, (name, hw, fmt) in enumerate(IMAGES):
        path = root / 'images' / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if hw is None:
            path.write_bytes(b'\xff\xd8 truncated, not a JPEG')
            continue
        img, objects[name] = _draw(*hw, seed)
        Image.fromarray(img).save(path, format=fmt, quality=95)
    common = [
        '--arch',
        json.dumps(TINY_VIT_ARCH), '--checkpoint',
        str(ckpt), '--fixed-size',
        str(FIXED), '--batch-size', '2', '--chunk-size', '2', '--workers', '0'
    ]
    return dict(root=root, images=str(root / 'images'), ckpt=ckpt, objects=objects, common=common)


def _cli(tool: Path, *args, env=None, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.Popen([sys.executable, str(tool), *map(str, args)],
                            cwd=ROOT,
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True,
                            **kwargs)


@pytest.fixture(scope='module')
def reference(data):
    """One uninterrupted run through the command line."""
    out = data['root'] / 'ref' / 'out.json'
    proc = _cli(GENERATE, data['images'], '--out', out, *data['common'])
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log
    return out, log


def _reference_masks(path: Path, vit: DINOViT):
    """The official steps re-stated: PIL LANCZOS 64x64, ToTensor+Normalize, last-block keys,
    core maskcut, nearest x8, CRF glue, PIL bicubic back, > max / 2."""
    with Image.open(path) as im:
        rgb = im.convert('RGB')
    small = np.array(rgb.resize((FIXED, FIXED), Image.LANCZOS))
    x = torch.from_numpy(small).permute(2, 0, 1).float().div(255)
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor(
        [0.229, 0.224, 0.225])[:, None, None]
    keys = vit.forward_last_block(x[None], with_attn=False).patch_keys[0]
    stages = maskcut(keys, (8, 8), num_masks=3, tau=0.15)
    raw = [s.mask.repeat_interleave(8, 0).repeat_interleave(8, 1) for s in stages]
    raw = [m for m in raw if m.any()]
    out = []
    if raw:
        for res in batch_maskcut_crf_postprocess(small, torch.stack(raw)):
            if res.mask is None:
                continue
            up = np.asarray(
                Image.fromarray(res.mask.numpy().astype(np.uint8) * 255).resize(
                    rgb.size, Image.BICUBIC)).astype(float)
            m = up > up.max() / 2
            if m.any():
                out.append(m)
    return rgb.size, out


def test_json_matches_core_maskcut_and_pycocotools(data, reference):
    out, log = reference
    coco = json.loads(out.read_text())
    assert 'unreadable image n002/broken.JPEG' in log
    assert coco['info']['num_unreadable_images'] == 1
    assert coco['info']['unreadable_images'] == ['n002/broken.JPEG']
    readable = [(n, hw) for n, hw, _ in IMAGES if hw is not None]
    assert [im['file_name'] for im in coco['images']] == [n for n, _ in readable]
    assert [im['id'] for im in coco['images']] == list(range(1, len(readable) + 1))
    assert coco['categories'] == [{'id': 1, 'name': 'fg', 'supercategory': 'fg'}]
    assert [a['id'] for a in coco['annotations']] == list(range(1, len(coco['annotations']) + 1))

    vit = DINOViT(
        arch=dict(TINY_VIT_ARCH), init_cfg=dict(type='Pretrained', checkpoint=str(data['ckpt'])))
    found = []
    for im, (name, (h, w)) in zip(coco['images'], readable):
        assert (im['height'], im['width']) == (h, w)  # never swapped
        (ref_w, ref_h), ref_masks = _reference_masks(Path(data['images']) / name, vit)
        assert (ref_h, ref_w) == (h, w)
        anns = [a for a in coco['annotations'] if a['image_id'] == im['id']]
        assert len(anns) == len(ref_masks), name
        for ann, ref in zip(anns, ref_masks):
            assert ann['segmentation']['size'] == [h, w]
            got = mask_utils.decode({
                'size': [h, w],
                'counts': ann['segmentation']['counts'].encode()
            })
            np.testing.assert_array_equal(got.astype(bool), ref, err_msg=name)
            rle = mask_utils.encode(np.asfortranarray(ref.astype(np.uint8)))
            assert ann['area'] == int(mask_utils.area(rle))
            assert ann['bbox'] == [float(v) for v in mask_utils.toBbox(rle)]
            assert ann['category_id'] == 1 and ann['iscrowd'] == 0
        for obj in data['objects'][name]:
            found.append(max(((m & obj).sum() / (m | obj).sum() for m in ref_masks), default=0))
    # Even a random tiny ViT separates the flat objects from the noise.
    assert np.mean(np.array(found) > 0.8) >= 0.75


def _wait_for(path: Path, proc, timeout: float = 240) -> None:
    end = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f'generator exited early:\n{proc.stdout.read()}')
        if time.time() > end:
            proc.kill()
            raise AssertionError(f'{path} never appeared')
        time.sleep(0.02)


def test_kill_and_resume_is_byte_identical(data, reference, tmp_path):
    out = tmp_path / 'out.json'
    chunks = tmp_path / 'out.json.parts' / 'chunks'
    # A 1 s pause before every commit: SIGKILL right after the first commit lands while
    # the second chunk is done in memory but not on disk.
    proc = _cli(
        GENERATE,
        data['images'],
        '--out',
        out,
        *data['common'],
        env={generate._COMMIT_DELAY_ENV: '1'})
    _wait_for(chunks / 'chunk-0000000.json', proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # Normally only chunk 0 is on disk (chunk 1 waits for its commit); a stalled test
    # process may let one more through, never all four.
    committed = sorted(int(p.name[6:13]) for p in chunks.glob('chunk-*.json'))
    assert committed in ([0], [0, 1])
    assert not out.exists()
    # What a kill inside an atomic write leaves behind: ignored and removed.
    (chunks / '.chunk-0000003.json.x1y2.tmp').write_text('{"half": ')

    counts = generate.main([data['images'], '--out', str(out), *data['common']])
    sizes = [2, 2, 2, 1]  # images per chunk of 2 (7 files)
    assert counts['processed'] == sum(sizes) - sum(sizes[c] for c in committed)
    assert not list(chunks.glob('.*.tmp'))
    assert out.read_bytes() == reference[0].read_bytes()

    # Same work dir, other arguments: refused, nothing overwritten.
    with pytest.raises(ShardError, match='settings.tau: 0.15 vs 0.2'):
        generate.main([data['images'], '--out', str(out), *data['common'], '--tau', '0.2'])


def test_two_jobs_and_merge_equal_one_job(data, reference, tmp_path):
    work = [tmp_path / 'job0', tmp_path / 'job1']
    for job in (0, 1):
        # Job 1 runs the NCut + CRF in a worker process: same bytes.
        counts = generate.main([
            data['images'], '--out',
            str(tmp_path / 'unused.json'), '--work-dir',
            str(work[job]), '--shard', f'{job}/2', *data['common'], '--cpu-workers',
            str(2 * job)
        ])
        assert counts['out'] is None
    assert not (tmp_path / 'unused.json').exists()
    # The unreadable image lies in chunk 1 (job 0); job 1 has chunks 2-3.
    shard0, = work[0].glob('shard-*.json')
    shard1, = work[1].glob('shard-*.json')
    assert shard0.name == 'shard-0000000-0000002.json'
    assert shard1.name == 'shard-0000002-0000004.json'

    merged = tmp_path / 'merged.json'
    proc = _cli(MERGE, work[1], shard0, '--out', merged)
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, log
    assert merged.read_bytes() == reference[0].read_bytes()

    # A shard generated with other arguments is refused, by name.
    other = tmp_path / 'other' / shard1.name
    other.parent.mkdir()
    shard = json.loads(shard1.read_text())
    shard['mmuol_shard']['generation']['settings']['tau'] = 0.2
    other.write_text(json.dumps(shard))
    with pytest.raises(ShardError, match=r'different arguments.*settings\.tau: 0\.15 vs 0\.2'):
        merge.main([str(shard0), str(other), '--out', str(tmp_path / 'bad.json')])
    # A missing shard, and a shard given twice (overlap), are refused too.
    with pytest.raises(ShardError, match=r'chunks \[2, 4\) are in no shard file'):
        merge.main([str(shard0), '--out', str(tmp_path / 'bad.json')])
    dup = tmp_path / 'dup' / shard0.name
    dup.parent.mkdir()
    shutil.copy(shard0, dup)
    with pytest.raises(ShardError, match='also covers'):
        merge.main([str(shard0), str(dup), str(shard1), '--out', str(tmp_path / 'bad.json')])
    assert not (tmp_path / 'bad.json').exists()
    # The command line turns it into a one-line error.
    proc = _cli(MERGE, tmp_path / 'nowhere', '--out', tmp_path / 'bad.json')
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1 and 'error: shard file or work dir not found' in log


def test_torchrun_ranks_equal_one_process(data, reference, tmp_path):
    """Two ranks (gloo on CPU) split the chunks; rank 0 merges: same bytes."""
    out = tmp_path / 'out.json'
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([
        sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
        str(GENERATE), data['images'], '--out',
        str(out), *data['common'], '--launcher', 'pytorch'
    ],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shards = sorted(p.name for p in (tmp_path / 'out.json.parts').glob('shard-*.json'))
    assert shards == ['shard-0000000-0000002.json', 'shard-0000002-0000004.json']
    assert out.read_bytes() == reference[0].read_bytes()
