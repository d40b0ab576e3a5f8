# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""OpenMMLab conventions: supported versions checked at import, stated once."""
import os.path as osp
import re

import pytest

import hivit_mm.version as version_module
from hivit_mm.version import SUPPORTED_VERSIONS, check_dependency_versions

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_installed_stack_is_supported():
    check_dependency_versions()  # what `import hivit_mm` runs


@pytest.mark.parametrize('dist,found,ok', [
    ('mmcv', '2.1.0', True),
    ('mmcv', '2.2.0', False),
    ('mmcv', '2.0.1', False),
    ('mmcv', '2.1.1+cu118', True),
    ('mmengine', '0.10.7', True),
    ('mmengine', '1.0.0rc0', False),
    ('mmpretrain', '1.1.0', False),
    ('mmsegmentation', '1.2.2', True),
])
def test_an_unsupported_version_stops_the_import_with_the_range(
        monkeypatch, dist, found, ok):
    real = version_module.version
    monkeypatch.setattr(version_module, 'version',
                        lambda name: found if name == dist else real(name))
    if ok:
        check_dependency_versions()
        return
    low, high = SUPPORTED_VERSIONS[dist]
    with pytest.raises(ImportError, match=re.escape(f'{dist}>={low},<{high}')) as err:
        check_dependency_versions()
    assert f'{dist}=={found} is installed' in str(err.value)


def test_missing_required_library_is_named_but_detection_is_optional(monkeypatch):
    real = version_module.version

    def without(*names):
        def version(name):
            if name in names:
                raise version_module.PackageNotFoundError(name)
            return real(name)
        return version

    monkeypatch.setattr(version_module, 'version', without('mmdet', 'mmsegmentation'))
    check_dependency_versions()
    monkeypatch.setattr(version_module, 'version', without('mmpretrain'))
    with pytest.raises(ImportError, match='needs mmpretrain>=1.2.0,<1.3.0'):
        check_dependency_versions()


def test_install_requires_states_the_supported_ranges_and_pins_are_inside():
    """requirements/mminstall.txt (setup.py's install_requires) and version.py agree,
    and the exact pins of constraints.txt lie inside the ranges."""
    def lines(name):
        with open(osp.join(REPO, 'requirements', name)) as f:
            return [ln.split('#')[0].strip() for ln in f if ln.split('#')[0].strip()]

    ranges = {}
    for line in lines('mminstall.txt'):
        dist, low, high = re.fullmatch(r'([\w-]+)>=([\w.]+),<([\w.]+)', line).groups()
        ranges[dist] = (low, high)
    assert ranges == SUPPORTED_VERSIONS
    pins = dict(re.fullmatch(r'([\w-]+)==([\w.]+)', ln).groups()
                for ln in lines('constraints.txt') if '==' in ln)

    def release(text: str) -> tuple:  # the pins and bounds are plain dotted numbers
        return tuple(int(part) for part in text.split('.'))

    for dist, (low, high) in ranges.items():
        assert release(low) <= release(pins[dist]) < release(high), dist
