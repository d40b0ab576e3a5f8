# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
import datetime
import warnings

from mmengine import DefaultScope

__all__ = ['register_all_modules']


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every module of hivit_mm that registers something.

    Like ``mmdet.utils.register_all_modules``. Only needed for unscoped types in a
    config whose ``default_scope`` is ``hivit_mm``; scoped types (``hivit_mm.X``) import
    what they need on their own.

    Args:
        init_default_scope (bool): Also make ``hivit_mm`` the current default scope (a
            new instance, with a warning, if another scope is current). Defaults to True.
    """
    import hivit_mm.datasets  # noqa: F401
    import hivit_mm.engine  # noqa: F401
    import hivit_mm.models  # noqa: F401

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('hivit_mm'):
        DefaultScope.get_instance('hivit_mm', scope_name='hivit_mm')
    elif current.scope_name != 'hivit_mm':
        warnings.warn(f'The current default scope "{current.scope_name}" is not '
                      '"hivit_mm"; a new instance with scope "hivit_mm" is made current.')
        DefaultScope.get_instance(
            f'hivit_mm-{datetime.datetime.now()}', scope_name='hivit_mm')
