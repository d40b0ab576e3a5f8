# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Hooks that keep a run from training on garbage or losing its checkpoints.

* :class:`NonFiniteLossHook` stops training at the first NaN/Inf loss (or gradient
  norm, where the optimizer wrapper computes one) before the optimizer step, so the
  weights and every checkpoint stay as they were; or, with ``action='skip'``, drops
  the batch and counts it. Any task: it guards the optimizer wrapper, not a model.
* :class:`AtomicCheckpointHook` is mmengine's ``CheckpointHook`` with the order of a
  save fixed: write the new checkpoint, point ``last_checkpoint`` at it, and only then
  delete the ones beyond ``max_keep_ckpts`` (mmengine deletes first). The write itself
  is atomic under :class:`hivit_mm.engine.ReliableRunner`.

:class:`~hivit_mm.engine.ReliableRunner` installs both; they can also be listed in
``custom_hooks`` / ``default_hooks.checkpoint`` of a config run by another runner.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_rank, get_world_size, is_distributed, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict

from hivit_mm.registry import HOOKS
from hivit_mm.utils.checkpoint import remove_stale_temp_files, write_text_atomic

__all__ = ['NonFiniteLossError', 'NonFiniteLossHook', 'AtomicCheckpointHook']

_MAX_SAMPLES_LISTED = 16


class NonFiniteLossError(RuntimeError):
    """Training met a NaN/Inf loss or gradient norm; the message says where."""


class _NonFiniteGradNorm(Exception):
    """Raised inside the optimizer step, before the parameters change."""

    def __init__(self, norm: float) -> None:
        super().__init__(norm)
        self.norm = norm


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def _ranks_where(flag: bool) -> List[int]:
    """The ranks on which ``flag`` holds (``[0]`` or ``[]`` when not distributed).

    Collective: every rank must call it at the same point, and all get the same list,
    so that they all take the same decision (one rank skipping an optimizer step the
    others take would leave DDP's gradient all-reduce waiting for it).
    """
    if not is_distributed():
        return [0] if flag else []
    device = 'cuda' if torch_dist.get_backend() == 'nccl' else 'cpu'
    flags = torch.zeros(get_world_size(), dtype=torch.int32, device=device)
    flags[get_rank()] = int(flag)
    torch_dist.all_reduce(flags, op=torch_dist.ReduceOp.MAX)
    return flags.nonzero().flatten().tolist()


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training (or skip the batch) at the first non-finite loss.

    Before each backward pass the summed loss is checked; where the optimizer
    wrapper clips gradients by norm (``clip_grad=dict(max_norm=...)``), the norm is
    checked before the optimizer step as well (not under ``AmpOptimWrapper``, whose
    loss scaler skips steps with overflowing gradients by design). In distributed
    runs the decision is collective: when the loss of any rank is non-finite, every
    rank stops (or skips the step) at the same iteration, so no rank is left waiting
    in DDP's gradient all-reduce. The message names the iteration (and the ranks),
    the loss terms and the batch's ``sample_idx`` and ``img_path`` values, and the
    samples whose input tensors hold NaN/Inf.

    Args:
        action (str): ``'raise'`` (default): raise :class:`NonFiniteLossError`
            before the parameters change, so no checkpoint is written from that
            state. ``'skip'``: leave the parameters, the optimizer state and the
            model's buffers (e.g. BatchNorm statistics) as they were before the
            batch, count it in the message hub (``non_finite_skipped``, saved in
            checkpoints) and log a warning.
        max_skips (int, optional): With ``action='skip'``, raise once more than
            this many batches were skipped in the run. Defaults to None (no limit).
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'raise', max_skips: Optional[int] = None) -> None:
        if action not in ('raise', 'skip'):
            raise ValueError(f"action must be 'raise' or 'skip', got {action!r}")
        self.action = action
        self.max_skips = max_skips
        self._batch: Optional[dict] = None
        self._log_vars: Optional[Dict[str, torch.Tensor]] = None
        self._buffers: Dict[str, torch.Tensor] = {}
        self._guarded: List[OptimWrapper] = []

    # -- installation -----------------------------------------------------------
    def before_train(self, runner) -> None:
        optim_wrapper = runner.optim_wrapper
        wrappers = (list(optim_wrapper.values())
                    if isinstance(optim_wrapper, OptimWrapperDict) else [optim_wrapper])
        for wrapper in wrappers:
            if wrapper not in self._guarded:
                self._guard(runner, wrapper)
                self._guarded.append(wrapper)
        model = _unwrap(runner.model)
        parse_losses = model.parse_losses

        def recording_parse_losses(losses):
            loss, log_vars = parse_losses(losses)
            self._log_vars = log_vars
            return loss, log_vars

        model.parse_losses = recording_parse_losses

    def _guard(self, runner, wrapper: OptimWrapper) -> None:
        """Check the loss in ``update_params`` and the norm in ``clip_func``."""
        update_params = wrapper.update_params

        def guarded_update_params(loss: torch.Tensor, *args, **kwargs) -> None:
            ranks = _ranks_where(not bool(torch.isfinite(loss.detach()).all()))
            if ranks:
                return self._non_finite(runner, wrapper, 'loss', ranks)
            try:
                update_params(loss, *args, **kwargs)
            except _NonFiniteGradNorm as exc:  # of all-reduced gradients: every rank
                return self._non_finite(runner, wrapper, f'gradient norm ({exc.norm})',
                                        list(range(get_world_size())))

        wrapper.update_params = guarded_update_params
        clip_func = getattr(wrapper, 'clip_func', None)
        if clip_func is not None and not isinstance(wrapper, AmpOptimWrapper):

            def guarded_clip_func(params, **kwargs):
                norm = clip_func(params, **kwargs)
                if norm is not None and not bool(torch.isfinite(norm)):
                    raise _NonFiniteGradNorm(float(norm))
                return norm

            wrapper.clip_func = guarded_clip_func

    # -- per iteration ----------------------------------------------------------
    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._batch = data_batch
        self._log_vars = None
        if self.action == 'skip':
            model = _unwrap(runner.model)
            self._buffers = {
                name: buf.detach().clone()
                for name, buf in model.named_buffers() if buf.is_floating_point()
            }

    def _non_finite(self, runner, wrapper: OptimWrapper, what: str,
                    ranks: List[int]) -> None:
        """Raise, or undo the batch (``action='skip'``), on every rank alike."""
        where, this = '', ''
        if is_distributed():
            where = f' on rank(s) {ranks} of {get_world_size()}'
            this = f' of rank {get_rank()}'
        message = (f'non-finite {what} at iteration {runner.iter + 1} '
                   f'(epoch {runner.epoch + 1}){where}; loss terms{this}: '
                   f'{self._loss_terms()}; batch{this}: {self._describe_batch()}')
        if self.action == 'raise':
            runner.logger.error(message)
            raise NonFiniteLossError(
                f'{message}. Training stopped before the optimizer step: the weights '
                'were not updated with it and no checkpoint was written from this '
                'state. To skip such batches instead, set '
                "reliability=dict(non_finite='skip') in the config.")
        wrapper.zero_grad()
        model = _unwrap(runner.model)
        with torch.no_grad():
            for name, buf in model.named_buffers():
                if name in self._buffers:
                    buf.copy_(self._buffers[name])
        skipped = runner.message_hub.get_info('non_finite_skipped', 0) + 1
        runner.message_hub.update_info('non_finite_skipped', skipped)
        if self.max_skips is not None and skipped > self.max_skips:
            raise NonFiniteLossError(
                f'{message}; {skipped} batches skipped, more than max_skips='
                f'{self.max_skips}: stopping')
        runner.logger.warning(f'{message}; batch skipped ({skipped} so far)')

    def _loss_terms(self) -> str:
        if not self._log_vars:
            return 'unknown'
        return ', '.join(f'{k}={float(v):.6g}' for k, v in self._log_vars.items())

    def _describe_batch(self) -> str:
        """``sample_idx``/``img_path`` of each sample and the non-finite inputs."""
        batch = self._batch
        if not isinstance(batch, dict):
            return 'unknown'
        samples = batch.get('data_samples') or []
        described = []
        for sample in samples[:_MAX_SAMPLES_LISTED]:
            meta = getattr(sample, 'metainfo', None) or {}
            fields = [f'{k}={meta[k]}' for k in ('sample_idx', 'img_path') if k in meta]
            described.append('(' + ', '.join(fields or ['no metainfo']) + ')')
        if len(samples) > _MAX_SAMPLES_LISTED:
            described.append(f'... {len(samples) - _MAX_SAMPLES_LISTED} more')
        inputs = batch.get('inputs')
        if isinstance(inputs, torch.Tensor):
            inputs = list(inputs)
        bad = [i for i, x in enumerate(inputs or [])
               if isinstance(x, torch.Tensor) and x.is_floating_point()
               and not bool(torch.isfinite(x).all())]
        text = f'{len(samples)} samples ' + ' '.join(described)
        if bad:
            text += f'; samples with NaN/Inf in their input: positions {bad}'
        return text


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that deletes old checkpoints only after a save succeeded.

    Same arguments as mmengine's ``CheckpointHook``. A save writes the checkpoint
    (atomically under :class:`~hivit_mm.engine.ReliableRunner`), then rewrites
    ``last_checkpoint`` atomically, then removes the checkpoints beyond
    ``max_keep_ckpts``; a kill or a full disk at any point leaves the previous
    checkpoint in place and ``last_checkpoint`` pointing at a complete file. Before
    training, the temporary files that a killed save left in the checkpoint folder
    are deleted (with a warning naming them).
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process() and '://' not in self.out_dir:
            for path in remove_stale_temp_files(self.out_dir):
                runner.logger.warning(f'removed {path}, the partial file of a save '
                                      'that was interrupted')

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        stale: Sequence[int] = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale = [self.keep_ckpt_ids.popleft()]
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for old in stale:
            path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed
                self.file_backend.rmtree(path)
