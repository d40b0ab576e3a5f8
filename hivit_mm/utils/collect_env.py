# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Collect the environment information to paste into a bug report.

Run ``python tools/misc/collect_env.py`` or ``python -m hivit_mm.utils.collect_env``.
"""
import importlib
import importlib.metadata
import os.path as osp
import subprocess
from collections import OrderedDict
from typing import Dict, Tuple

from mmengine.utils.dl_utils import collect_env as collect_base_env

__all__ = ['collect_env', 'git_hash', 'library_version']

# (display name, module) of the OpenMMLab libraries hivit_mm works with.
_LIBRARIES: Tuple[Tuple[str, str], ...] = (
    ('MMCV', 'mmcv'),
    ('MMPreTrain', 'mmpretrain'),
    ('MMDetection', 'mmdet'),
    ('MMSegmentation', 'mmseg'),
    ('hivit_mm', 'hivit_mm'),
)


def library_version(module: str) -> str:
    """Return the version of an importable module, or why it is unavailable."""
    try:
        mod = importlib.import_module(module)
        version = getattr(mod, '__version__', None)
        return str(version or importlib.metadata.version(module))
    except ImportError as e:
        return f'not installed ({e})'
    except Exception as e:  # e.g. mmdet's assertion on the mmcv version
        return f'import failed ({type(e).__name__}: {e})'


def _mmcv_ops() -> Dict[str, str]:
    """Whether ``mmcv.ops`` (the compiled extension) loads, and how it was built."""
    info: Dict[str, str] = OrderedDict()
    try:
        from mmcv.ops import get_compiler_version, get_compiling_cuda_version
    except Exception as e:  # mmcv-lite, or a build without ops
        info['MMCV compiled ops'] = f'unavailable ({type(e).__name__}: {e})'
        return info
    info['MMCV compiled ops'] = 'available'
    info['MMCV Compiler'] = get_compiler_version()
    info['MMCV CUDA Compiler'] = get_compiling_cuda_version()
    return info


def git_hash() -> str:
    """The commit of the hivit_mm checkout this package is imported from.

    Returns:
        str: The full commit hash, with ``' (uncommitted changes)'`` appended when
        tracked files differ from it, or why there is none (an installed copy that is
        not a git checkout, or no ``git``).
    """
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

    def git(*args: str) -> str:
        return subprocess.run(['git', '-C', root, *args], capture_output=True,
                              text=True, timeout=30, check=True).stdout.strip()

    try:
        if osp.realpath(git('rev-parse', '--show-toplevel')) != osp.realpath(root):
            return 'unknown (not a git checkout of hivit_mm)'
        commit = git('rev-parse', 'HEAD')
        dirty = git('status', '--porcelain', '--untracked-files=no')
    except (OSError, subprocess.SubprocessError):
        return 'unknown (not a git checkout of hivit_mm, or no git)'
    return commit + (' (uncommitted changes)' if dirty else '')


def collect_env() -> Dict[str, str]:
    """Collect the versions of the stack hivit_mm runs on.

    Returns:
        dict[str, str]: mmengine's environment information (platform, Python, CUDA,
        compiler, PyTorch and its build, TorchVision, OpenCV, MMEngine) plus the
        versions of MMCV (and whether its compiled ops load), MMPreTrain,
        MMDetection, MMSegmentation and hivit_mm, and hivit_mm's git commit
        (:func:`git_hash`). A library that is missing or fails to import is reported
        as such rather than raising.
    """
    env_info = collect_base_env()
    for name, module in _LIBRARIES:
        env_info[name] = library_version(module)
        if module == 'mmcv':
            env_info.update(_mmcv_ops())
    env_info['hivit_mm git hash'] = git_hash()
    return env_info


def main() -> None:
    """Print the environment information, one ``name: value`` line per item."""
    for name, val in collect_env().items():
        print(f'{name}: {val}')


if __name__ == '__main__':
    main()
