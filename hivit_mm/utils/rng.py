# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The random number generator states of a process, for bit-exact resumption.

A training step draws from four generators: Python's ``random`` and NumPy's global
generator (data transforms in the main process), torch's CPU generator (masks, drop
path, dropout, shuffling) and torch's CUDA generators. mmengine re-seeds all of them
on resume, so a resumed run replays the random draws of the run's first iterations;
:class:`hivit_mm.engine.ReliableRunner` saves :func:`get_rng_state` in every checkpoint
and restores it with :func:`set_rng_state` right before the first resumed iteration.
"""
import random
from contextlib import contextmanager
from typing import Any, Dict, Iterator

import numpy as np
import torch

__all__ = ['get_rng_state', 'set_rng_state', 'preserved_rng_state']


def get_rng_state() -> Dict[str, Any]:
    """The states of Python's, NumPy's, torch's CPU and (if used) CUDA generators.

    Returns:
        dict: ``python``, ``numpy``, ``torch`` (a uint8 tensor) and ``cuda`` (a list
        of uint8 tensors, one per device; empty when CUDA is not initialised).
    """
    cuda = (torch.cuda.get_rng_state_all()
            if torch.cuda.is_available() and torch.cuda.is_initialized() else [])
    return dict(python=random.getstate(), numpy=np.random.get_state(),
                torch=torch.get_rng_state(), cuda=cuda)


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore states returned by :func:`get_rng_state`.

    Raises:
        ValueError: If the state holds CUDA generators for more devices than this
            process sees.
    """
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'].cpu())
    cuda = state.get('cuda') or []
    if cuda:
        if len(cuda) > torch.cuda.device_count():
            raise ValueError(f'the saved random state has {len(cuda)} CUDA generators, '
                             f'this process sees {torch.cuda.device_count()} devices')
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


@contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Run a block (such as a validation) without changing any generator's state."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
