# Copyright (c) mmuol contributors. All rights reserved.
"""``SelfTrainingHook``: CutLER's multi-round self-training in one run."""
import copy
import os.path as osp
from typing import List, Optional, Sequence

import torch
from mmdet.registry import HOOKS
from mmengine.dist import barrier, collect_results, get_rank, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop, Runner
from mmengine.utils import ProgressBar

from mmuol.pseudo_labels import dump_json, encode_mask, load_json, merge_self_training
from .drop_loss import _DropLossMixin

__all__ = ['SelfTrainingHook']

_META_KEY = 'cutler_self_training_round'


def _innermost_dataset(dataset_cfg: dict) -> dict:
    """The pseudo-label dataset inside wrappers (``MultiImageMixDataset``, ...)."""
    cfg = dataset_cfg
    while 'ann_file' not in cfg and isinstance(cfg.get('dataset'), dict):
        cfg = cfg['dataset']
    if 'ann_file' not in cfg:
        raise ValueError('SelfTrainingHook: the train dataset config has no ann_file (expected a '
                         'MaskCutDataset, possibly inside MultiImageMixDataset)')
    return cfg


@HOOKS.register_module()
class SelfTrainingHook(Hook):
    """Multi-round self-training (CutLER, arXiv 2301.11320, Sec. 3.3).

    The run trains ``initial_iters`` iterations on the MaskCut labels, then
    ``len(score_thrs)`` self-training rounds of ``round_iters`` each
    (``train_cfg.max_iters`` must be the sum). At the end of each round the
    hook

    1. saves the weights (``<out_dir>/model_round{r}.pth``);
    2. runs the model on the training images (the train dataset with
       ``test_mode=True`` and ``infer_pipeline``), keeping per image the best
       ``max_per_img`` predictions with ``score >= score_thrs[r]``;
    3. merges them with the previous pseudo-labels
       (:func:`mmuol.pseudo_labels.merge_self_training`: predictions plus
       previous masks with IoU ``< mask_iou_thr`` to all of them) and writes
       ``<out_dir>/pseudo_labels_round{r + 1}.json`` atomically (rank 0 only;
       every rank waits for it);
    4. points the training data at that file (rebuilding the train
       dataloader from ``round_dataloader``, e.g. copy-paste ratio
       ``(0.5, 1.0)``), switches DropLoss off (``disable_drop_loss``) and,
       with ``round_optim``, sets the learning rate / weight decay of the
       rounds and clears the optimizer state (CutLER restarts each round from
       the previous weights with a fresh optimizer). Training continues from
       the current weights.

    Learning-rate schedulers must end by ``initial_iters`` when
    ``round_optim`` is given (the rounds use a constant learning rate).
    A resumed run (``--resume``) continues in the right round: the round
    and the applied settings are stored in the checkpoints' meta, the train
    data point at that round's file, and a file missing because the run was
    killed while writing it is regenerated when the checkpoint is the one at
    the end of the previous round.

    Args:
        initial_iters (int): Iterations on the initial (MaskCut) labels.
        round_iters (int): Iterations of each self-training round.
        score_thrs (Sequence[float]): Score threshold per round; its length
            is the number of rounds. CutLER: ``(0.7, 0.65)``.
        mask_iou_thr (float): Previous masks survive below this IoU with every
            kept prediction. Defaults to 0.5.
        max_per_img (int): Predictions per image considered. Defaults to 30.
        out_dir (str, optional): Folder of the round files. Defaults to
            ``<work_dir>/self_training``.
        infer_pipeline (list[dict], optional): Pipeline of the inference
            pass. Defaults to ``test_dataloader.dataset.pipeline``.
        infer_batch_size (int): Defaults to 1.
        infer_num_workers (int): Defaults to 2.
        round_dataloader (dict, optional): Train dataloader config of the
            rounds (its pseudo-label ``ann_file`` is replaced). Defaults to
            ``train_dataloader``.
        round_optim (dict, optional): ``lr`` and/or ``weight_decay`` of the
            rounds, scaled per parameter group like the initial values
            (CutLER: ``dict(lr=0.005, weight_decay=1e-4)``). None keeps the
            optimizer as it is.
        disable_drop_loss (bool): Switch DropLoss off in the rounds (CutLER).
            Defaults to True.
    """

    priority = 'NORMAL'  # before CheckpointHook: a checkpoint at a round end follows the file

    def __init__(self,
                 initial_iters: int,
                 round_iters: int,
                 score_thrs: Sequence[float] = (0.7, 0.65),
                 mask_iou_thr: float = 0.5,
                 max_per_img: int = 30,
                 out_dir: Optional[str] = None,
                 infer_pipeline: Optional[List[dict]] = None,
                 infer_batch_size: int = 1,
                 infer_num_workers: int = 2,
                 round_dataloader: Optional[dict] = None,
                 round_optim: Optional[dict] = None,
                 disable_drop_loss: bool = True) -> None:
        if initial_iters < 1 or round_iters < 1 or not score_thrs:
            raise ValueError('SelfTrainingHook needs initial_iters >= 1, round_iters >= 1 and at '
                             'least one score threshold')
        if round_optim is not None and not set(round_optim) <= {'lr', 'weight_decay'}:
            raise ValueError(f'round_optim takes lr and weight_decay, got {sorted(round_optim)}')
        self.initial_iters = int(initial_iters)
        self.round_iters = int(round_iters)
        self.score_thrs = [float(t) for t in score_thrs]
        self.mask_iou_thr = float(mask_iou_thr)
        self.max_per_img = int(max_per_img)
        self.out_dir = out_dir
        self.infer_pipeline = infer_pipeline
        self.infer_batch_size = int(infer_batch_size)
        self.infer_num_workers = int(infer_num_workers)
        self.round_dataloader = round_dataloader
        self.round_optim = dict(round_optim) if round_optim is not None else None
        self.disable_drop_loss = bool(disable_drop_loss)
        self.applied_round = 0

    # --------------------------------------------------------------- rounds
    @property
    def num_rounds(self) -> int:
        return len(self.score_thrs)

    def round_start(self, r: int) -> int:
        """Iteration at which self-training round ``r`` (1-based) starts."""
        return self.initial_iters + (r - 1) * self.round_iters

    def round_at(self, iteration: int) -> int:
        """Round being trained after ``iteration`` finished iterations (0 = initial)."""
        return sum(1 for r in range(1, self.num_rounds + 1) if iteration >= self.round_start(r))

    def label_file(self, r: int) -> str:
        """Pseudo-label file of round ``r`` (0 = the initial ann_file)."""
        if r == 0:
            return self._initial_ann_file
        return osp.join(self._out_dir, f'pseudo_labels_round{r}.json')

    # ---------------------------------------------------------------- hooks
    def before_train(self, runner: Runner) -> None:
        """Check the schedule; on resume, put the run into its round."""
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            raise TypeError('SelfTrainingHook needs train_cfg=dict(type=\'IterBasedTrainLoop\')')
        total = self.initial_iters + self.num_rounds * self.round_iters
        if runner.max_iters != total:
            raise ValueError(f'SelfTrainingHook: train_cfg.max_iters is {runner.max_iters} but '
                             f'initial_iters + {self.num_rounds} x round_iters = {total}')
        if self.round_optim is not None:
            for scheduler in runner.param_schedulers or []:
                if getattr(scheduler, 'end', 0) > self.initial_iters:
                    raise ValueError(
                        f'SelfTrainingHook: param scheduler {type(scheduler).__name__} ends at '
                        f'{scheduler.end} > initial_iters={self.initial_iters}; the rounds use '
                        'round_optim\'s constant lr (set end=initial_iters)')
        self._out_dir = self.out_dir or osp.join(runner.work_dir, 'self_training')
        dataset_cfg = _innermost_dataset(runner.cfg.train_dataloader['dataset'])
        ann_file = dataset_cfg['ann_file']
        if dataset_cfg.get('data_root') and not osp.isabs(ann_file):
            ann_file = osp.join(dataset_cfg['data_root'], ann_file)
        self._initial_ann_file = ann_file

        r = self.round_at(runner.iter)
        if r == 0:
            return
        if not osp.isfile(self.label_file(r)):
            if runner.iter != self.round_start(r):
                raise FileNotFoundError(
                    f'resumed at iteration {runner.iter}, inside self-training round {r}, but its '
                    f'pseudo-label file {self.label_file(r)} is missing')
            self._make_round_file(runner, r)
        self._enter_round(runner, r, fresh=r > self.applied_round)

    def after_train_iter(self,
                         runner: Runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """At the end of a round: label, merge, write, switch to the next round."""
        done = runner.iter + 1
        for r in range(1, self.num_rounds + 1):
            if done == self.round_start(r):
                runner.save_checkpoint(
                    self._out_dir,
                    f'model_round{r - 1}.pth',
                    save_optimizer=False,
                    save_param_scheduler=False,
                    by_epoch=False)
                self._make_round_file(runner, r)
                self._enter_round(runner, r, fresh=True)

    def after_train(self, runner: Runner) -> None:
        """Save the final weights as ``model_round{num_rounds}.pth``."""
        if runner.iter >= self.round_start(self.num_rounds):
            runner.save_checkpoint(
                self._out_dir,
                f'model_round{self.num_rounds}.pth',
                save_optimizer=False,
                save_param_scheduler=False,
                by_epoch=False)

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[_META_KEY] = self.applied_round

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        self.applied_round = int(checkpoint.get('meta', {}).get(_META_KEY, 0))

    # -------------------------------------------------------------- helpers
    def _apply_round_optim(self, runner: Runner) -> None:
        """Round lr / weight decay, scaled per group like the initial values."""
        optimizer = runner.optim_wrapper.optimizer
        base_lr = optimizer.defaults.get('lr') or 1.0
        base_wd = optimizer.defaults.get('weight_decay') or 0.0
        for group in optimizer.param_groups:
            # The initial values are kept in the group, hence in checkpoints,
            # so a resumed run scales a later round the same way.
            group.setdefault('cutler_initial_lr', group.get('initial_lr', group['lr']))
            group.setdefault('cutler_initial_weight_decay', group.get('weight_decay', 0.0))
            if 'lr' in self.round_optim:
                group['lr'] = self.round_optim['lr'] * group['cutler_initial_lr'] / base_lr
            if 'weight_decay' in self.round_optim:
                mult = group['cutler_initial_weight_decay'] / base_wd if base_wd else 1.0
                group['weight_decay'] = self.round_optim['weight_decay'] * mult
        optimizer.state.clear()  # fresh momentum, as a new CutLER round

    def _enter_round(self, runner: Runner, r: int, fresh: bool) -> None:
        """Train on round ``r``'s file; apply the round settings once."""
        logger = runner.logger
        cfg = copy.deepcopy(self.round_dataloader or runner.cfg.train_dataloader)
        dataset_cfg = _innermost_dataset(cfg['dataset'])
        dataset_cfg['ann_file'] = self.label_file(r)
        dataset_cfg['swapped_size'] = False  # our files are never swapped
        loop = runner.train_loop
        loop.dataloader = runner.build_dataloader(cfg, seed=runner.seed)
        loop.dataloader_iterator = type(loop.dataloader_iterator)(loop.dataloader)
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        if self.disable_drop_loss:
            for module in model.modules():
                if isinstance(module, _DropLossMixin):
                    module.drop_loss = None
        if fresh and self.round_optim is not None:
            self._apply_round_optim(runner)
        self.applied_round = r
        logger.info(f'self-training round {r}/{self.num_rounds} (iterations '
                    f'{self.round_start(r)}-{self.round_start(r) + self.round_iters}): training on '
                    f'{self.label_file(r)}')

    def _predict(self, runner: Runner, ann_file: str, score_thr: float) -> Optional[List[dict]]:
        """Predictions of the model on the training images (rank 0 gets them)."""
        dataset_cfg = copy.deepcopy(_innermost_dataset(runner.cfg.train_dataloader['dataset']))
        pipeline = self.infer_pipeline
        if pipeline is None:
            if not runner.cfg.get('test_dataloader'):
                raise ValueError('SelfTrainingHook: give infer_pipeline (no test_dataloader in the '
                                 'config to take the test pipeline from)')
            pipeline = runner.cfg.test_dataloader['dataset']['pipeline']
        dataset_cfg.update(ann_file=ann_file, test_mode=True, filter_cfg=None, pipeline=pipeline)
        if ann_file != self._initial_ann_file:
            dataset_cfg['swapped_size'] = False
        loader = runner.build_dataloader(
            dict(
                batch_size=self.infer_batch_size,
                num_workers=self.infer_num_workers,
                persistent_workers=False,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=dataset_cfg))
        model = runner.model
        model.eval()
        per_image: List[List[dict]] = []
        bar = ProgressBar(len(loader.dataset)) if is_main_process() else None
        with torch.no_grad():
            for batch in loader:
                for sample in model.test_step(batch):
                    per_image.append(self._keep(sample, score_thr))
                    if bar is not None:
                        bar.update(get_world_size())
        if bar is not None:
            bar.file.write('\n')
        model.train()
        collected = collect_results(per_image, len(loader.dataset), device='cpu')
        if collected is None:
            return None
        return [pred for preds in collected for pred in preds]

    def _keep(self, sample, score_thr: float) -> List[dict]:
        """Top ``max_per_img`` predictions of one image above the threshold, as RLE."""
        pred = sample.pred_instances
        if 'masks' not in pred:
            raise ValueError('SelfTrainingHook needs a model that predicts masks (Mask R-CNN / '
                             'Cascade Mask R-CNN)')
        order = torch.argsort(pred.scores, descending=True, stable=True)[:self.max_per_img]
        out = []
        for i in order.tolist():
            score = float(pred.scores[i])
            if score < score_thr:
                continue
            out.append(
                dict(
                    image_id=int(sample.img_id),
                    score=score,
                    segmentation=encode_mask(pred.masks[i].cpu().numpy())))
        return out

    def _make_round_file(self, runner: Runner, r: int) -> None:
        """Write round ``r``'s pseudo-labels (rank 0); every rank waits for them."""
        thr = self.score_thrs[r - 1]
        previous = self.label_file(r - 1)
        runner.logger.info(f'self-training: predicting on the training images of {previous} '
                           f'(score >= {thr}, top {self.max_per_img} per image)')
        predictions = self._predict(runner, previous, thr)
        out_file = self.label_file(r)
        if get_rank() == 0:
            swapped = 'auto' if r == 1 else False
            prev_data, _ = load_json(previous, swapped_size=swapped)
            data, stats = merge_self_training(
                prev_data,
                predictions,
                score_thr=thr,
                mask_iou_thr=self.mask_iou_thr,
                max_per_image=self.max_per_img,
                info={'description': f'CutLER self-training round {r} (mmuol)'})
            dump_json(data, out_file)
            runner.logger.info(f'self-training round {r}: wrote {out_file} ({stats})')
        barrier()
        if not osp.isfile(out_file):
            raise FileNotFoundError(f'rank {get_rank()}: {out_file} written by rank 0 is not '
                                    'visible here; out_dir must be on a shared filesystem')
