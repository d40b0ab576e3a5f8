# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Test-suite configuration: the ``e2e`` marker of slow end-to-end tool runs
(``pytest -m "not e2e"`` is the unit tier)."""


def pytest_configure(config) -> None:
    config.addinivalue_line(
        'markers', 'e2e: slow end-to-end runs of the tools (deselect with -m "not e2e")')
