# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Print the environment information to paste into a bug report.

Usage: ``python tools/misc/collect_env.py`` (one ``name: value`` line per item).
"""
from hivit_mm.utils.collect_env import main

if __name__ == '__main__':
    main()
