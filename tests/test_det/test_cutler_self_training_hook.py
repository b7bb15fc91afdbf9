# Copyright (c) mmuol contributors. All rights reserved.
"""SelfTrainingHook's schedule checks, its resume decisions and the rank
split of the round file (rank 0 writes, every rank waits and checks); the
full loop runs in test_cutler_e2e.py."""
import json
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import IterBasedTrainLoop

import mmuol.det.cutler.self_training_hook as hook_module
from mmuol.det.cutler import SelfTrainingHook
from mmuol.pseudo_labels import encode_mask, load_json
from mmuol.testing.cutler_data import make_maskcut_dataset


def _runner(tmp_path, data, iteration=0, max_iters=7, loop=None, schedulers=()):
    cfg = Config(
        dict(
            train_dataloader=dict(
                dataset=dict(
                    type='MultiImageMixDataset',
                    dataset=dict(
                        type='MaskCutDataset',
                        data_root=data['data_root'],
                        ann_file=data['ann_file'])))))
    return SimpleNamespace(
        train_loop=object.__new__(IterBasedTrainLoop) if loop is None else loop,
        max_iters=max_iters,
        iter=iteration,
        param_schedulers=list(schedulers),
        work_dir=str(tmp_path / 'work'),
        cfg=cfg,
        logger=MMLogger.get_instance('cutler_hook_test'))


def test_schedule_and_checks(tmp_path):
    data = make_maskcut_dataset(str(tmp_path / 'data'), num_images=2)
    hook = SelfTrainingHook(initial_iters=3, round_iters=2, score_thrs=(0.7, 0.65))
    assert [hook.round_start(r) for r in (1, 2)] == [3, 5]
    assert [hook.round_at(i) for i in range(8)] == [0, 0, 0, 1, 1, 2, 2, 2]
    hook.before_train(_runner(tmp_path, data))  # fresh start: nothing to do
    assert hook.label_file(0) == osp.join(data['data_root'], data['ann_file'])
    assert hook.label_file(2) == osp.join(
        str(tmp_path / 'work'), 'self_training', 'pseudo_labels_round2.json')
    with pytest.raises(ValueError, match=r'max_iters is 8 but initial_iters \+ 2 x round_iters'):
        hook.before_train(_runner(tmp_path, data, max_iters=8))
    with pytest.raises(TypeError, match='IterBasedTrainLoop'):
        hook.before_train(_runner(tmp_path, data, loop=object()))
    with_optim = SelfTrainingHook(initial_iters=3, round_iters=2, round_optim=dict(lr=0.1))
    with pytest.raises(ValueError, match='MultiStepLR ends at 7 > initial_iters=3'):
        with_optim.before_train(
            _runner(tmp_path, data, schedulers=[type('MultiStepLR', (), dict(end=7))()]))
    with pytest.raises(ValueError, match='round_optim takes lr and weight_decay'):
        SelfTrainingHook(initial_iters=3, round_iters=2, round_optim=dict(momentum=0.5))
    # Resumed inside round 1 while its file is gone: cannot be rebuilt.
    with pytest.raises(
            FileNotFoundError, match='resumed at iteration 4, inside self-training '
            'round 1'):
        hook.before_train(_runner(tmp_path, data, iteration=4))


@pytest.mark.parametrize('rank', [0, 1])
def test_only_rank_0_writes_and_every_rank_waits(tmp_path, monkeypatch, rank):
    data = make_maskcut_dataset(str(tmp_path / 'data'), num_images=2, image_hw=(48, 64))
    hook = SelfTrainingHook(initial_iters=3, round_iters=2, score_thrs=(0.5, ))
    runner = _runner(tmp_path, data, max_iters=5)
    hook.before_train(runner)
    mask = data['masks'][1][0]
    preds = [dict(image_id=2, score=0.75, segmentation=encode_mask(mask))]
    events = []
    monkeypatch.setattr(hook_module, 'get_rank', lambda: rank)
    monkeypatch.setattr(hook_module, 'barrier', lambda: events.append('barrier'))
    # collect_results gives the predictions to rank 0 only.
    monkeypatch.setattr(hook, '_predict', lambda r, f, t: preds if rank == 0 else None)
    out = hook.label_file(1)
    if rank == 0:
        hook._make_round_file(runner, 1)
        assert events == ['barrier']
        written, _ = load_json(out)
        assert [(a['image_id'], a['score']) for a in written['annotations']
                if 'score' in a] == [(2, 0.75)]
        with open(out) as f:
            assert json.load(f)['info'] == {'description': 'CutLER self-training round 1 (mmuol)'}
    else:
        with pytest.raises(FileNotFoundError, match='shared filesystem'):
            hook._make_round_file(runner, 1)
        assert events == ['barrier'] and not osp.exists(out)
