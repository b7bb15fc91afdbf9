# Copyright (c) mmuol contributors. All rights reserved.
"""``--show-dir`` drawing of the CorLoc evaluations."""
import os.path as osp
from typing import Sequence

from mmdet.engine.hooks import DetVisualizationHook
from mmdet.registry import HOOKS
from mmdet.structures import DetDataSample
from mmengine.runner import Runner
from mmengine.utils import mkdir_or_exist

from mmuol.utils.image_io import read_image

__all__ = ['CorLocVisualizationHook']


@HOOKS.register_module()
class CorLocVisualizationHook(DetVisualizationHook):
    """:class:`~mmdet.engine.hooks.DetVisualizationHook` for the CorLoc runs.

    Two differences from the mmdet hook: the picture is decoded with
    :func:`~mmuol.utils.image_io.read_image`, the decoder of the pipeline
    (so what is drawn is what the model saw), and images skipped as invalid
    (``invalid_reason``) are not drawn, so one bad file cannot end a finished
    evaluation. Arguments are those of the mmdet hook.
    """

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: dict,
                        outputs: Sequence[DetDataSample]) -> None:
        """Draw the predictions of one test batch.

        Args:
            runner (Runner): The test runner.
            batch_idx (int): Index of the batch.
            data_batch (dict): The batch from the dataloader (unused).
            outputs (Sequence[DetDataSample]): Predictions with ground truth.
        """
        if self.draw is False:
            return
        if self.test_out_dir is not None and not osp.isabs(self.test_out_dir):
            self.test_out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
        if self.test_out_dir is not None:
            mkdir_or_exist(self.test_out_dir)
        for sample in outputs:
            self._test_index += 1
            if sample.metainfo.get('invalid_reason') is not None:
                continue
            img_path = sample.img_path
            img = read_image(img_path, 'rgb', self.backend_args)
            out_file = None
            if self.test_out_dir is not None:
                out_file = osp.join(self.test_out_dir, osp.basename(img_path))
            self._visualizer.add_datasample(
                osp.basename(img_path) if self.show else 'test_img',
                img,
                data_sample=sample,
                show=self.show,
                wait_time=self.wait_time,
                pred_score_thr=self.score_thr,
                out_file=out_file,
                step=self._test_index)
