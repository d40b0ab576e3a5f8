# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The hivit_mm scope: reachable from every library's configs, clashing with none."""
import pytest
from mmengine import registry as mmengine_registry
from mmengine.registry import DefaultScope, init_default_scope

import hivit_mm.registry as ours
from conftest import HIVIT_TINY
from hivit_mm.models import HiViT
from hivit_mm.utils import register_all_modules

TINY = dict(type='hivit_mm.HiViT', arch=dict(HIVIT_TINY), img_size=32)


def test_registries_are_direct_children_of_the_mmengine_roots():
    for name in ours.__all__:
        registry = getattr(ours, name)
        root = getattr(mmengine_registry, name)
        assert registry.parent is root, name
        assert root.children['hivit_mm'] is registry, name
        assert registry.scope == 'hivit_mm'


@pytest.mark.parametrize('scope,lib', [('mmdet', 'mmdet.registry'),
                                       ('mmseg', 'mmseg.registry'),
                                       ('mmpretrain', 'mmpretrain.registry')])
def test_scoped_type_builds_from_another_librarys_scope(scope, lib):
    import importlib
    models = importlib.import_module(lib).MODELS
    init_default_scope(scope)
    assert isinstance(models.build(dict(TINY)), HiViT)


def test_unscoped_type_builds_in_the_hivit_mm_scope():
    register_all_modules()
    assert DefaultScope.get_current_instance().scope_name == 'hivit_mm'
    assert isinstance(ours.MODELS.build(dict(TINY, type='HiViT')), HiViT)
    constructor = ours.OPTIM_WRAPPER_CONSTRUCTORS.get(
        'LayerDecayOptimWrapperConstructor')
    assert constructor.__module__ == 'hivit_mm.engine.optimizers'
    # the name of earlier releases still builds it (existing configs)
    assert ours.OPTIM_WRAPPER_CONSTRUCTORS.get(
        'HiViTLayerDecayOptimWrapperConstructor') is constructor


def test_no_name_clashes_with_upstream_registries():
    """Our names are new to mmpretrain, mmdet and mmseg, except ``HiViT``: the backbone
    issue fixes its name as ``hivit_mm.HiViT``, which the scope keeps apart from
    ``mmpretrain.HiViT`` (both build; see the scoped-build test)."""
    import mmdet.registry
    import mmpretrain.registry
    import mmseg.registry
    register_all_modules(init_default_scope=False)
    clashes = set()
    for name in ours.__all__:
        mine = set(getattr(ours, name).module_dict)
        for lib in (mmpretrain.registry, mmdet.registry, mmseg.registry):
            theirs = getattr(lib, name, None)
            if theirs is not None:
                clashes |= mine & set(theirs.module_dict)
    assert clashes == {'HiViT'}
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    assert MODELS.get('HiViT').__module__.startswith('mmpretrain')
    assert MODELS.get('hivit_mm.HiViT') is HiViT
