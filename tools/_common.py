# Copyright (c) mmuol contributors. All rights reserved.
"""Shared glue of ``tools/train.py`` and ``tools/test.py`` for both hosts."""
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction

# Running from a source checkout must not need ``pip install -e .``.
_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

HOSTS = ('mmdet', 'mmseg')


def load_config(path: str, cfg_options=None, work_dir=None, launcher='none') -> Config:
    """Load a config, apply CLI overrides and pick the work dir.

    Raises:
        ValueError: The config has no ``default_scope`` of a supported host.
    """
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    scope = cfg.get('default_scope')
    if scope not in HOSTS:
        raise ValueError(
            f'{path}: default_scope is {scope!r}; mmuol tools run mmdet or mmseg '
            "configs (inherit 'mmdet::_base_/default_runtime.py' or "
            "'mmseg::_base_/default_runtime.py').")
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def parse_with_common_args(parser):
    """Add the options both tools share, parse, and export ``LOCAL_RANK``."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torchrun passes --local-rank; mmengine reads LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_runner(cfg: Config):
    """Build the runner named by ``runner_type`` (mmengine's by default)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
