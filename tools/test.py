# Copyright (c) mmuol contributors. All rights reserved.
"""Test / evaluate an mmuol model from an mmdet or mmseg config.

Usage:
    python tools/test.py CONFIG [CHECKPOINT] [--work-dir DIR] [--show-dir DIR]
        [--out FILE] [--cfg-options key=value ...] [--launcher pytorch]

``CHECKPOINT`` is optional: training-free localizers (LOST, TokenCut, ...)
load their backbone weights from the config (``init_cfg``), so
``python tools/test.py configs/lost/lost_dino-vits16_voc07.py`` evaluates
CorLoc directly. With no checkpoint the model's ``init_weights`` runs, which
loads every ``init_cfg=dict(type='Pretrained', ...)`` in the model.
"""
import argparse
import os.path as osp

from _common import build_runner, load_config, parse_with_common_args
from mmengine.model import is_model_wrapper


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test an mmuol model (mmdet or mmseg)')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        default=None,
        help='model checkpoint (optional for training-free models)')
    parser.add_argument('--work-dir', help='directory for the metric json and logs')
    parser.add_argument(
        '--out', help='dump raw predictions to this .pkl (mmdet) or '
        'directory (mmseg)')
    parser.add_argument('--show', action='store_true', help='show predictions')
    parser.add_argument(
        '--show-dir', help='save drawn predictions under '
        'work_dir/<timestamp>/<show-dir>')
    parser.add_argument('--wait-time', type=float, default=2, help='interval of --show (s)')
    return parse_with_common_args(parser)


def enable_visualization(cfg, args) -> None:
    """Switch the host visualization hook on for --show / --show-dir."""
    hooks = cfg.get('default_hooks', {})
    if 'visualization' not in hooks:
        raise RuntimeError('--show/--show-dir need default_hooks.visualization '
                           "(DetVisualizationHook / SegVisualizationHook) in the config")
    hook = hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        if cfg.default_scope == 'mmdet':
            hook['test_out_dir'] = args.show_dir
        else:
            # mmseg saves relative to the cwd; keep results in the work dir
            # (images land in <show-dir>/vis_data/vis_image/).
            hook['interval'] = 1
            cfg.visualizer['save_dir'] = osp.join(cfg.work_dir, args.show_dir)


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.out is not None:
        if cfg.default_scope == 'mmdet':
            if not args.out.endswith(('.pkl', '.pickle')):
                raise ValueError('--out must be a .pkl file for mmdet configs')
            evaluators = cfg.test_evaluator
            if isinstance(evaluators, dict):
                evaluators = [evaluators]
            cfg.test_evaluator = list(evaluators) + [
                dict(type='DumpDetResults', out_file_path=args.out)
            ]
        else:
            cfg.test_evaluator['output_dir'] = args.out
            cfg.test_evaluator['keep_results'] = True
    runner = build_runner(cfg)
    if args.checkpoint is None:
        # No detector/segmentor checkpoint: load what init_cfg points to
        # (every rank reads the same files, so nothing needs broadcasting).
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.init_weights()
    runner.test()


if __name__ == '__main__':
    main()
