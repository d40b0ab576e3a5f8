# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""``ReliableRunner``: mmengine's Runner with the fault handling of hivit_mm.

Our configs set ``runner_type = 'hivit_mm.ReliableRunner'`` (``configs/_base_/
reliable_runtime.py``), which the ``tools/train.py`` of hivit_mm, mmpretrain, mmdet and
mmseg all honour. Against mmengine 0.10.7's ``Runner`` it changes:

* **loading** (``load_from``, ``--resume``, ``tools/test.py``): the state dict must fit
  the model (:func:`~hivit_mm.utils.checkpoint.load_state_dict_checked`) or the run
  stops before its first step, naming the missing, unexpected and mis-shaped keys;
  mmengine only warns. ``reliability.load_from_ignore_keys`` (regular expressions)
  allows a partial ``load_from`` explicitly; a resume is always strict.
* **auto-resume** (``--resume`` without a file): the newest *readable* checkpoint of
  the work directory, skipping (with a warning naming it) an empty or truncated one
  and an empty or dangling ``last_checkpoint``; it raises when checkpoints exist but
  none is readable, rather than start again from scratch.
* **saving**: every checkpoint is written to a temporary file in its directory,
  flushed and renamed into place; ``CheckpointHook`` becomes
  :class:`~hivit_mm.engine.AtomicCheckpointHook` (old checkpoints are deleted after
  the new one is safe). Each checkpoint stores the random generators of every rank
  (``meta.rng_state``), which the loops of :mod:`hivit_mm.engine.loops` (used in place
  of mmengine's) restore for a bit-exact resume.
* **persistent data-loader workers** of an epoch-based training loop
  (``persistent_workers=True``, ``num_workers > 0``) are turned off, with a logged
  message: their random streams run on across epochs, and a resumed run's workers could
  not continue them (they would start afresh); restarted each epoch and seeded from
  the seed and the epoch (:func:`hivit_mm.engine.loops.seed_workers_for_epoch`), the
  workers draw the same in a resumed run as in an uninterrupted one, and other
  transforms in each epoch. The cost is the workers' start-up once per epoch.
  ``reliability.exact_resume=False`` keeps them (a resume then warns that its random
  transforms differ). Iteration-based loops keep their workers: the iterator of an
  ``InfiniteSampler`` never restarts.
* **non-finite losses** stop training: :class:`~hivit_mm.engine.NonFiniteLossHook`
  is added unless the config lists one (``reliability.non_finite='skip'`` skips
  and counts such batches instead).

Settings (all optional), in the config::

    reliability = dict(
        non_finite='raise',         # or 'skip'
        max_non_finite_skips=None,  # with 'skip': stop after this many
        load_from_ignore_keys=[],   # e.g. [r'^head\\.'] to load all but the head
        exact_resume=True,          # False: keep persistent_workers (see above)
    )
"""
import copy
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Union

import torch.distributed as torch_dist
from mmengine.dist import get_rank, get_world_size, is_distributed, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop, Runner
from mmengine.runner.checkpoint import _load_checkpoint
from mmengine.runner.loops import BaseLoop

from hivit_mm.registry import RUNNERS
from hivit_mm.utils.checkpoint import (is_readable_checkpoint, load_state_dict_checked,
                                       replace_atomic)
from hivit_mm.utils.rng import get_rng_state
from .hooks import AtomicCheckpointHook, NonFiniteLossHook
from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop

__all__ = ['ReliableRunner', 'find_resumable_checkpoint']

RELIABILITY_DEFAULTS = dict(
    non_finite='raise', max_non_finite_skips=None, load_from_ignore_keys=(),
    exact_resume=True)
_CHECKPOINT_NAME = re.compile(r'^(?:epoch|iter)_(\d+)\.pth$')


def _is(type_: object, cls: type) -> bool:
    """Whether a config ``type`` names ``cls`` (mmengine's own class)."""
    return type_ is cls or type_ in (cls.__name__, f'mmengine.{cls.__name__}')


def _dataset_source(dataloader) -> str:
    """The type, ``data_root``, ``ann_file`` and ``data_prefix`` of a dataloader config's
    dataset (the innermost one of wrappers such as ``RepeatDataset``)."""
    cfg = (dataloader.get('dataset') if isinstance(dataloader, dict) else
           getattr(dataloader, 'dataset', None))
    while isinstance(cfg, dict) and isinstance(cfg.get('dataset'), dict):
        cfg = cfg['dataset']
    if not isinstance(cfg, dict):
        return type(cfg).__name__
    fields = [f'{k}={cfg[k]!r}' for k in ('type', 'data_root', 'ann_file', 'data_prefix')
              if k in cfg]
    return ', '.join(fields)


def find_resumable_checkpoint(work_dir: str, logger) -> Optional[str]:
    """The newest readable checkpoint of a work directory.

    Tries the file named by ``last_checkpoint`` first, then ``epoch_N.pth`` /
    ``iter_N.pth`` by decreasing ``N``; warns, naming it, about each unreadable one.

    Args:
        work_dir (str): The run's work directory.
        logger: Where the warnings go.

    Returns:
        str | None: A path, or None when the directory holds no checkpoint.

    Raises:
        RuntimeError: If checkpoints exist but none is readable.
    """
    candidates: List[str] = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            last = f.read().strip()
        if not last:
            logger.warning(f'{pointer} is empty; looking for checkpoints in {work_dir}')
        else:
            candidates.append(last)
    if osp.isdir(work_dir):
        found = [(int(m.group(1)), name) for name in os.listdir(work_dir)
                 if (m := _CHECKPOINT_NAME.match(name))]
        candidates += [osp.join(work_dir, name)
                       for _, name in sorted(found, reverse=True)]
    tried = set()
    for path in candidates:
        if osp.abspath(path) in tried:
            continue
        tried.add(osp.abspath(path))
        problem = is_readable_checkpoint(path)
        if problem is None:
            return path
        logger.warning(f'cannot resume from {path}: {problem}; trying an older one')
    if tried:
        raise RuntimeError(f'no readable checkpoint in {work_dir} (tried '
                           f'{sorted(tried)}); '
                           'refusing to start the run again from scratch. Remove them '
                           'or pass --resume PATH')
    return None


@RUNNERS.register_module()
class ReliableRunner(Runner):
    """mmengine's ``Runner`` that refuses bad weights and never loses work.

    Same arguments as :class:`mmengine.runner.Runner`; the behaviour it changes and
    the ``reliability`` settings of the config are listed in the module docstring.
    """

    resumed_rng_state: Optional[Dict] = None  # restored by the loops, then cleared
    _resuming = False

    @property
    def reliability(self) -> Dict:
        """The ``reliability`` settings of the config, with defaults."""
        settings = dict(RELIABILITY_DEFAULTS)
        settings.update(self.cfg.get('reliability') or {})
        unknown = set(settings) - set(RELIABILITY_DEFAULTS)
        if unknown:
            raise KeyError(f'unknown reliability settings {sorted(unknown)}; known: '
                           f'{sorted(RELIABILITY_DEFAULTS)}')
        return settings

    # -- hooks and loops --------------------------------------------------------
    def register_hook(self, hook: Union[Hook, Dict], priority=None) -> None:
        if isinstance(hook, dict) and _is(hook.get('type'), CheckpointHook):
            hook = copy.copy(hook)
            hook['type'] = AtomicCheckpointHook
        super().register_hook(hook, priority)

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        super().register_hooks(default_hooks, custom_hooks)
        if not any(isinstance(h, NonFiniteLossHook) for h in self._hooks):
            settings = self.reliability
            self.register_hook(
                NonFiniteLossHook(action=settings['non_finite'],
                                  max_skips=settings['max_non_finite_skips']))

    def build_train_loop(self, loop: Union[BaseLoop, Dict]) -> BaseLoop:
        if isinstance(loop, dict):
            loop = copy.deepcopy(loop)
            if 'type' not in loop and 'by_epoch' in loop:
                loop['type'] = (ResumableEpochBasedTrainLoop
                                if loop.pop('by_epoch') else ResumableIterBasedTrainLoop)
            elif _is(loop.get('type'), EpochBasedTrainLoop):
                loop['type'] = ResumableEpochBasedTrainLoop
            elif _is(loop.get('type'), IterBasedTrainLoop):
                loop['type'] = ResumableIterBasedTrainLoop
            if loop.get('type') is ResumableEpochBasedTrainLoop:
                self._restart_workers_each_epoch()
        return super().build_train_loop(loop)

    def _restart_workers_each_epoch(self) -> None:
        """Turn off ``persistent_workers`` of the training loader (module docstring)."""
        loader = self._train_dataloader
        if (not isinstance(loader, dict) or not loader.get('persistent_workers')
                or not loader.get('num_workers') or not self.reliability['exact_resume']):
            return
        self._train_dataloader = {**loader, 'persistent_workers': False}
        self.logger.info(
            'train_dataloader: persistent_workers=True -> False, so that a resumed run '
            'draws the same random transforms as an uninterrupted one (the workers '
            'start once per epoch); reliability.exact_resume=False keeps them')

    @staticmethod
    def build_dataloader(dataloader, seed: Optional[int] = None,
                         diff_rank_seed: bool = False):
        """mmengine's ``build_dataloader`` that names the dataset's files when building
        it fails, and refuses an empty dataset (mmengine would train zero iterations,
        or loop forever with ``InfiniteSampler``).

        Raises:
            ValueError: If the dataset has no samples (naming its annotation file).
        """
        source = _dataset_source(dataloader)
        try:
            loader = Runner.build_dataloader(dataloader, seed=seed,
                                             diff_rank_seed=diff_rank_seed)
        except Exception as exc:
            exc.add_note(f'[hivit_mm] while building the dataset ({source})')
            raise
        try:
            size = len(loader.dataset)
        except TypeError:  # an iterable dataset
            return loader
        if size == 0:
            raise ValueError(f'the dataset ({source}) is empty: check the annotation '
                             'file and the data root')
        return loader

    # -- loading ----------------------------------------------------------------
    def load_or_resume(self) -> None:
        if not self._has_loaded and self._resume and self._load_from is None:
            found = find_resumable_checkpoint(self.work_dir, self.logger)
            if found is None:
                self.logger.info(f'no checkpoint in {self.work_dir} to resume from; '
                                 'starting from scratch')
                self._resume = False
            else:
                self.logger.info(f'auto-resuming from {found}')
                self._load_from = found
        super().load_or_resume()

    def resume(self, filename: str, *args, **kwargs) -> None:
        self._resuming = True
        try:
            super().resume(filename, *args, **kwargs)
        finally:
            self._resuming = False

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):
        """Load weights that must fit the model (see the module docstring).

        ``strict`` is accepted for mmengine's signature; loading is always strict
        but for ``reliability.load_from_ignore_keys`` (not applied on resume).

        Raises:
            FileNotFoundError, hivit_mm.utils.checkpoint.CheckpointLoadError: If the
                file is missing or unreadable (naming it).
            hivit_mm.utils.checkpoint.CheckpointMismatchError: If the weights do not
                fit the model, listing the keys.
        """
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model
        # the weights are those of the wrapped model (DDP, or a test-time-augmentation
        # model such as mmseg's SegTTAModel), as mmengine's load_state_dict unwraps
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        state = checkpoint.get('state_dict', checkpoint) if isinstance(
            checkpoint, dict) else checkpoint
        metadata = getattr(state, '_metadata', None)
        for pattern, replacement in revise_keys:
            state = type(state)((re.sub(pattern, replacement, k), v)
                                for k, v in state.items())
        if metadata is not None:
            state._metadata = metadata
        ignore = () if self._resuming else self.reliability['load_from_ignore_keys']
        what = 'resume from' if self._resuming else 'load'
        report = load_state_dict_checked(model, state, f'{filename} ({what})', ignore)
        if report['ignored'] or report['missing']:
            self.logger.warning(
                f'partial load of {filename} (reliability.load_from_ignore_keys='
                f'{list(ignore)}): left out {report["ignored"]}; kept the '
                f'initialisation of {report["missing"]}')
        if self._resuming:
            states = (checkpoint.get('meta') or {}).get('rng_state')
            if states:
                rank = get_rank() if len(states) == get_world_size() else 0
                if rank != get_rank():
                    self.logger.warning(
                        f'{filename} holds the random states of {len(states)} ranks, '
                        f'this run has {get_world_size()}: every rank takes rank 0\'s')
                self.resumed_rng_state = states[rank]
            else:
                self.logger.warning(f'{filename} holds no random states (saved by '
                                    'another runner): the resumed run will not repeat '
                                    'the random draws of an uninterrupted one')
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    # -- saving -----------------------------------------------------------------
    def save_checkpoint(self, out_dir: str, filename: str, file_client_args=None,
                        save_optimizer: bool = True, save_param_scheduler: bool = True,
                        meta: Optional[dict] = None, by_epoch: bool = True,
                        backend_args: Optional[dict] = None) -> None:
        """mmengine's ``save_checkpoint``, atomic for local files, with the random
        states of every rank in ``meta['rng_state']``. Called on every rank (the
        states are gathered); rank 0 writes."""
        meta = {} if meta is None else meta
        states = [get_rng_state()]
        if is_distributed():
            states = [None] * get_world_size()
            torch_dist.all_gather_object(states, get_rng_state())
        if not is_main_process():
            return
        meta['rng_state'] = states
        save = super().save_checkpoint
        kwargs = dict(file_client_args=file_client_args, save_optimizer=save_optimizer,
                      save_param_scheduler=save_param_scheduler, meta=meta,
                      by_epoch=by_epoch, backend_args=backend_args)
        if file_client_args is not None or backend_args is not None or '://' in out_dir:
            return save(out_dir, filename, **kwargs)  # a remote store: no rename
        replace_atomic(
            osp.join(out_dir, filename),
            lambda tmp: save(osp.dirname(tmp), osp.basename(tmp), **kwargs))
