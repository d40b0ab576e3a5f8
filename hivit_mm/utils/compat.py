# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Work-arounds for known breakages of the pinned stack, in one place.

Each fix says why it is needed and is applied by :func:`apply_compat_fixes`, which
``hivit_mm`` calls on import. None of them edits an installed package's files.

1. ``torch >= 2.6`` defaults ``torch.load`` to ``weights_only=True``, but checkpoints
   saved by mmengine 0.10.7 pickle its ``HistoryBuffer`` and NumPy scalars, so
   ``tools/test.py``, ``--resume``, ``load_from`` and ``init_cfg=Pretrained`` cannot load
   them (open-mmlab/mmengine#1655; fixed only on mmengine's unreleased main). We
   re-register mmengine's local-file and http(s) loaders with
   :func:`hivit_mm.utils.checkpoint.load_checkpoint_file` (``weights_only=False``, and
   the hash check of published ``<name>-<8 hex>.pth`` files). Only load checkpoints you
   trust, as with any pickle.
2. mmengine 0.10.7 initialises distributed runs with ``torch.cuda.set_device`` and wraps
   models with ``device_ids=[local_rank]``, both of which fail on a machine without a
   GPU. :func:`setup_cpu_distributed` starts a ``gloo`` process group from the launcher's
   environment and points the runner at a CPU-capable wrapper; it is used by
   ``tools/train.py`` and ``tools/test.py``.
3. ``SyncBN`` (used by several upstream base configs) needs CUDA; on CPU-only distributed
   runs :func:`setup_cpu_distributed` rewrites it to ``BN`` and drops ``cfg.sync_bn``
   (with which the runner would convert ``BN`` layers to ``SyncBatchNorm``). mmengine
   already does this for non-distributed runs (``revert_sync_batchnorm``).
4. The process group of :func:`setup_cpu_distributed` honours
   ``env_cfg.dist_cfg.timeout`` (seconds), as mmengine's ``init_dist`` does on GPUs: a
   hung rank then stops the others after that time instead of torch's 30 minutes.
5. A sample that fails to load (an empty or undecodable image, a missing file) raises
   from deep inside a transform without naming the file (``cv2.error: !buf.empty()``).
   mmengine's ``BaseDataset.prepare_data`` is wrapped so that the exception, of the same
   type, carries a note naming the dataset, the index and the sample's ``*_path``
   fields.
6. A config that inherits ``mmpretrain::`` (or ``mmdet::``, ``mmseg::``) bases gets
   ``_scope_`` added to every typed dict, the data loader's ``collate_fn`` included, and
   mmengine 0.10.7's ``Runner.build_dataloader`` passes every field but ``type`` on as
   a keyword argument (``default_collate() got an unexpected keyword argument
   '_scope_'``). ``Runner.build_dataloader`` is wrapped to drop ``_scope_`` from
   ``collate_fn`` first, so configs need not restate their collate functions.
"""
import datetime
import functools
import os
import subprocess
from typing import Any

import torch
import torch.distributed as torch_dist

from .checkpoint import load_checkpoint_file, load_checkpoint_url

__all__ = ['apply_compat_fixes', 'setup_cpu_distributed', 'finish_cpu_distributed']

_APPLIED = False


def _load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint with ``weights_only=False`` (see fix 1)."""
    return load_checkpoint_file(filename, map_location)


def _load_url_checkpoint(filename: str, map_location: Any = None) -> Any:
    """Download (once) and load an http(s) checkpoint (see fix 1)."""
    return load_checkpoint_url(filename, map_location)


def _describe_sample(dataset: Any, idx: int) -> str:
    """The file fields of a dataset's sample, for error messages."""
    try:
        info = dataset.get_data_info(idx)
    except Exception:  # the index itself is bad: the exception says so
        return ''
    files = {k: v for k, v in info.items() if k.endswith('_path') or k == 'img_id'}
    return ', '.join(f'{k}={v}' for k, v in files.items())


def _name_files_in_data_errors() -> None:
    """Wrap ``BaseDataset.prepare_data`` (see fix 5)."""
    from mmengine.dataset import BaseDataset
    prepare_data = BaseDataset.prepare_data

    @functools.wraps(prepare_data)
    def prepare_data_naming_files(self, idx):
        try:
            return prepare_data(self, idx)
        except Exception as exc:
            exc.add_note(f'[hivit_mm] while loading sample {idx} of '
                         f'{type(self).__name__}: {_describe_sample(self, idx)}')
            raise

    BaseDataset.prepare_data = prepare_data_naming_files


def _collate_fn_without_scope() -> None:
    """Wrap ``Runner.build_dataloader`` (see fix 6)."""
    from mmengine.runner import Runner
    build_dataloader = Runner.build_dataloader  # a staticmethod: the plain function

    @functools.wraps(build_dataloader)
    def build_dataloader_without_scope(dataloader, *args, **kwargs):
        collate_fn = dataloader.get('collate_fn') if isinstance(dataloader,
                                                                dict) else None
        if isinstance(collate_fn, dict) and '_scope_' in collate_fn:
            collate_fn = {k: v for k, v in collate_fn.items() if k != '_scope_'}
            dataloader = dict(dataloader, collate_fn=collate_fn)
        return build_dataloader(dataloader, *args, **kwargs)

    Runner.build_dataloader = staticmethod(build_dataloader_without_scope)


def apply_compat_fixes() -> None:
    """Apply the import-time fixes (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    from mmengine.runner.checkpoint import CheckpointLoader

    # The scheme registry keys loaders by prefix; '' is the local-file fallback. mmengine
    # names its loaders ``load_from_*`` and prints that name, so keep the convention.
    _load_local_checkpoint.__name__ = 'load_from_local'
    _load_url_checkpoint.__name__ = 'load_from_http'
    CheckpointLoader.register_scheme(
        prefixes='', loader=_load_local_checkpoint, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=_load_url_checkpoint, force=True)
    _name_files_in_data_errors()
    _collate_fn_without_scope()
    _APPLIED = True


def _launcher_env(launcher: str) -> None:
    """Fill ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the master address."""
    if launcher == 'pytorch':  # torchrun sets everything
        return
    if launcher == 'slurm':
        node_list = os.environ['SLURM_NODELIST']
        os.environ.setdefault(
            'MASTER_ADDR',
            subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1'))
        os.environ.setdefault('MASTER_PORT', '29500')
        os.environ['RANK'] = os.environ['SLURM_PROCID']
        os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
        os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    elif launcher == 'mpi':
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
        os.environ.setdefault('MASTER_PORT', '29500')
        os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
        os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
        os.environ['LOCAL_RANK'] = os.environ['OMPI_COMM_WORLD_LOCAL_RANK']
    else:
        raise ValueError(f'unknown launcher {launcher!r}')


def _revert_sync_bn(cfg: Any) -> int:
    """Replace ``type='SyncBN'`` by ``'BN'`` everywhere in a config; return the count."""
    count = 0
    if isinstance(cfg, dict):
        if cfg.get('type') == 'SyncBN':
            cfg['type'] = 'BN'
            count += 1
        for value in cfg.values():
            count += _revert_sync_bn(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            count += _revert_sync_bn(value)
    return count


def setup_cpu_distributed(cfg: Any, launcher: str) -> bool:
    """Prepare a distributed run on a machine without a GPU (see fixes 2 and 3).

    Starts a ``gloo`` process group from the launcher's environment, with the
    config's ``env_cfg.dist_cfg.timeout`` (seconds) if any (mmengine's runner then
    finds it initialised and skips its CUDA-only ``init_dist``), sets the config's
    backend to ``gloo``, wraps the model without ``device_ids`` and rewrites ``SyncBN``.

    Args:
        cfg (mmengine.Config): The run's config, edited in place.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        bool: Whether a CPU process group was started.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    _launcher_env(launcher)
    if not torch_dist.is_initialized():
        timeout = ((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout')
        kwargs = {} if timeout is None else dict(
            timeout=datetime.timedelta(seconds=timeout))
        torch_dist.init_process_group(backend='gloo', **kwargs)
    # ``merge_from_dict`` creates missing levels; ``setdefault`` chains would edit a
    # copy, since ConfigDict stores a converted copy of a plain-dict default.
    cfg.merge_from_dict({'env_cfg.dist_cfg.backend': 'gloo'})
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    # mmengine reads ``cfg.find_unused_parameters`` only when it builds the default
    # wrapper itself, i.e. without ``model_wrapper_cfg``; keep honouring it.
    if cfg.get('find_unused_parameters', False):
        wrapper.setdefault('find_unused_parameters', True)
    cfg.model_wrapper_cfg = wrapper
    if _revert_sync_bn(cfg.get('model')):
        print('[hivit_mm] CPU-only distributed run: SyncBN replaced by BN.', flush=True)
    if cfg.get('sync_bn'):  # the runner would convert BN layers to SyncBatchNorm
        print(f'[hivit_mm] CPU-only distributed run: sync_bn={cfg.sync_bn!r} ignored.',
              flush=True)
        cfg.sync_bn = None
    return True


def finish_cpu_distributed(started: bool) -> None:
    """Close the ``gloo`` process group of :func:`setup_cpu_distributed` on every rank.

    Rank 0 writes the last checkpoint after the others have left the training loop; a
    rank whose interpreter exits while a peer is still connected can abort in gloo's
    teardown ("terminate called without an active exception", exit -6), which fails the
    whole job after a successful run. A barrier makes every rank wait for rank 0, then
    the group is destroyed explicitly.

    Args:
        started (bool): What :func:`setup_cpu_distributed` returned.
    """
    if started and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
