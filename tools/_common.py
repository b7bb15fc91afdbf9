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
        raise ValueError(f'{path}: default_scope is {scope!r}; mmuol tools run mmdet or mmseg '
                         "configs (inherit 'mmdet::_base_/default_runtime.py' or "
                         "'mmseg::_base_/default_runtime.py').")
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def parse_with_common_args(parser):
    """Add the options both tools share, parse, and export ``LOCAL_RANK``."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config entries, key=value')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torchrun passes --local-rank; mmengine reads LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def init_cpu_distributed(cfg: Config) -> bool:
    """Start the ``pytorch`` launcher's process group on a machine without GPU.

    mmengine's launcher selects a CUDA device per process, which fails
    without a GPU; here the process group starts with the ``gloo`` backend
    instead (mmengine then uses it as is) and DistributedDataParallel gets no
    device ids.

    Returns:
        bool: Whether the CPU process group was started.
    """
    import torch
    import torch.distributed as torch_dist
    if cfg.launcher != 'pytorch' or torch.cuda.is_available() or torch_dist.is_initialized():
        return False
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
    torch_dist.init_process_group(backend='gloo')
    if torch_dist.get_rank() == 0:
        print(
            f'No GPU: running {torch_dist.get_world_size()} processes on the CPU with the '
            'gloo backend.',
            flush=True)
    return True


def build_runner(cfg: Config):
    """Build the runner named by ``runner_type`` (mmengine's by default).

    With ``launcher='pytorch'`` on a machine without GPU, the process group is
    started on the CPU first (:func:`init_cpu_distributed`).
    """
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    init_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
