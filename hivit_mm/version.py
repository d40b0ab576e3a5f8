# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The version of hivit_mm and the versions of the OpenMMLab stack it supports.

``import hivit_mm`` calls :func:`check_dependency_versions` first, as mmdet and
mmpretrain check mmcv and mmengine, so an unsupported stack stops at import with the
range to install rather than failing later inside a training run. ``setup.py`` reads
this file without importing the package, so it imports only the standard library.
"""
import re
from importlib.metadata import PackageNotFoundError, version
from typing import Dict, Optional, Tuple

__version__ = '0.1.0'

#: Distribution name -> (lowest supported, first unsupported) version. The lower
#: bounds are the versions the test suite runs on (the pins of
#: ``requirements/constraints.txt``); mmcv < 2.2 is what mmdet 3.3 and mmseg 1.2 accept.
#: ``requirements/mminstall.txt`` (``install_requires``) states the same ranges.
SUPPORTED_VERSIONS: Dict[str, Tuple[str, str]] = {
    'mmengine': ('0.10.7', '1.0.0'),
    'mmcv': ('2.1.0', '2.2.0'),
    'mmpretrain': ('1.2.0', '1.3.0'),
    'mmdet': ('3.3.0', '3.4.0'),
    'mmsegmentation': ('1.2.2', '1.3.0'),
}
#: Needed by every part of hivit_mm; the others only by detection/segmentation configs.
REQUIRED = ('mmengine', 'mmcv', 'mmpretrain')


def _release(text: str) -> Tuple[int, ...]:
    """``'2.1.0rc1'`` -> ``(2, 1, 0)``: the numeric release part of a version."""
    match = re.match(r'\d+(\.\d+)*', text)
    return tuple(int(p) for p in match.group(0).split('.')) if match else ()


def _installed(dist: str) -> Optional[str]:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def check_dependency_versions() -> None:
    """Stop with a clear message if an OpenMMLab library is missing or unsupported.

    Raises:
        ImportError: A required library (mmengine, mmcv, mmpretrain) is not installed,
            or an installed one (those plus mmdet, mmsegmentation) is outside
            :data:`SUPPORTED_VERSIONS`. The message names the installed version and
            the range to install.
    """
    for dist, (low, high) in SUPPORTED_VERSIONS.items():
        found = _installed(dist)
        if found is None:
            if dist in REQUIRED:
                raise ImportError(
                    f'hivit_mm needs {dist}>={low},<{high}, which is not installed '
                    f'(pip install "{dist}>={low},<{high}"; see README.md, '
                    'Installation)')
            continue
        if not _release(low) <= _release(found) < _release(high):
            raise ImportError(
                f'{dist}=={found} is installed, but hivit_mm supports '
                f'{dist}>={low},<{high}; install a version in that range (the tested '
                'versions are in requirements/constraints.txt)')
