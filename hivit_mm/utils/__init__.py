# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
from .compat import apply_compat_fixes, setup_cpu_distributed
from .setup_env import register_all_modules

__all__ = ['apply_compat_fixes', 'setup_cpu_distributed', 'register_all_modules']
