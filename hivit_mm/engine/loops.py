# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Training loops that resume bit-exactly.

mmengine's loops with three changes, so that a run killed mid-epoch and resumed logs
the same losses and ends with the same weights as an uninterrupted one:

* the random number generators are restored (:mod:`hivit_mm.utils.rng`, saved by
  :class:`~hivit_mm.engine.ReliableRunner`) after the data loader has been advanced
  to the resumed position and before the first resumed batch is drawn;
* :class:`ResumableEpochBasedTrainLoop` resumes in the middle of an epoch: it skips
  the batches of the epoch that were already trained (mmengine restarts the epoch
  from its first batch while counting on from the saved iteration);
* validation runs with the generators' states preserved, so it draws nothing from
  the training streams (a resumed run does not repeat the validation that followed
  its checkpoint);
* workers that start afresh each epoch (``persistent_workers=False``) are seeded per
  epoch (:func:`seed_workers_for_epoch`): mmengine's ``worker_init_fn`` seeds them from
  ``randomness.seed``, rank and worker id alone, so every epoch would repeat the
  random transforms of the first.

Skipped batches are loaded and dropped (as mmengine's ``IterBasedTrainLoop`` does):
mmengine seeds each data-loader worker from ``randomness.seed`` when it starts, so
replaying the batches reproduces their random transforms exactly. (Not so for
``persistent_workers=True`` in an epoch-based loop: the workers' draws then continue
across epochs, and a resumed epoch starts them afresh; the runner turns them off
unless ``reliability.exact_resume=False``.)
:class:`~hivit_mm.engine.ReliableRunner` uses these loops in place of mmengine's.
"""
import logging
from functools import partial

from mmengine.dataset import worker_init_fn as mmengine_worker_init_fn
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from hivit_mm.registry import LOOPS
from hivit_mm.utils.rng import preserved_rng_state, set_rng_state

__all__ = ['ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop',
           'seed_workers_for_epoch']


def _restore_rng(runner) -> None:
    """Restore the generators saved in the resumed checkpoint (once)."""
    state = getattr(runner, 'resumed_rng_state', None)
    if state is not None:
        set_rng_state(state)
        runner.resumed_rng_state = None


def seed_workers_for_epoch(loader, epoch: int) -> None:
    """Seed the workers a data loader starts for ``epoch`` apart from other epochs'.

    mmengine's ``worker_init_fn`` (mmengine/dataset/utils.py) seeds worker ``w`` of rank
    ``r`` with ``seed + r * num_workers + w`` each time it starts, so workers restarted
    every epoch (``persistent_workers=False``) would draw the same crops and flips in
    every epoch. This offsets the seed by ``epoch * world_size * num_workers``: every
    (epoch, rank, worker) gets its own stream, epoch 0 keeps mmengine's, and a resumed
    run draws the same as an uninterrupted one (the seed depends on the epoch only).
    Loaders without workers, with persistent ones, or with another ``worker_init_fn``
    are left as they are.

    Args:
        loader (torch.utils.data.DataLoader): The training loader.
        epoch (int): The epoch its next iterator is for (0-based).
    """
    fn = loader.worker_init_fn
    if (loader.num_workers == 0 or loader.persistent_workers
            or not isinstance(fn, partial) or fn.func is not mmengine_worker_init_fn):
        return
    base = getattr(loader, '_epoch0_worker_seed', fn.keywords['seed'])
    loader._epoch0_worker_seed = base
    offset = epoch * get_world_size() * loader.num_workers
    loader.worker_init_fn = partial(fn.func, *fn.args, **{**fn.keywords,
                                                          'seed': base + offset})


def _validate_if_due(loop, done: int, total: int) -> None:
    """Validate after ``done`` of ``total`` iterations or epochs when mmengine's loops
    would (``val_begin``, every ``val_interval`` and at the end), with the generators'
    states preserved."""
    if (loop.runner.val_loop is not None and done >= loop.val_begin
            and (done % loop.val_interval == 0 or done == total)):
        with preserved_rng_state():
            loop.runner.val_loop.run()


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """mmengine's ``IterBasedTrainLoop`` that resumes bit-exactly (module docstring)."""

    def run(self) -> None:
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            print_log(f'Advance dataloader {self._iter} steps to skip data that has '
                      'already been trained', logger='current', level=logging.INFO)
            for _ in range(self._iter):
                next(self.dataloader_iterator)
        _restore_rng(self.runner)
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            _validate_if_due(self, self._iter, self._max_iters)
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` that resumes bit-exactly, also mid-epoch
    (module docstring)."""

    def run(self):
        self.runner.call_hook('before_train')
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            self._decide_current_val_interval()
            _validate_if_due(self, self._epoch, self._max_epochs)
        self.runner.call_hook('after_train')
        return self.runner.model

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        done = self._iter - self._epoch * len(self.dataloader)  # trained before resume
        resuming = getattr(self.runner, 'resumed_rng_state', None) is not None
        if (resuming and self._epoch > 0 and self.dataloader.num_workers > 0
                and self.dataloader.persistent_workers):
            print_log('persistent data-loader workers start afresh on resume: the '
                      'random transforms of this run differ from an uninterrupted one '
                      '(reliability.exact_resume=True, or persistent_workers=False, '
                      'for a bit-exact resume)',
                      logger='current', level=logging.WARNING)
        if done <= 0:
            _restore_rng(self.runner)  # resumed at an epoch boundary
        seed_workers_for_epoch(self.dataloader, self._epoch)
        batches = iter(self.dataloader)
        if done > 0:
            print_log(f'Advance dataloader {done} steps to skip data that has already '
                      'been trained in this epoch', logger='current', level=logging.INFO)
            for _ in range(done):
                next(batches)
            _restore_rng(self.runner)
        for idx, data_batch in enumerate(batches, start=max(done, 0)):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
