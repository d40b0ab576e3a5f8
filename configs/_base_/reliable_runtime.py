# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# Fault handling of every hivit_mm config (README, "Reliability"): the runner that
# refuses checkpoints that do not fit the model, writes checkpoints atomically,
# auto-resumes from the newest readable one, resumes bit-exactly and stops at the
# first NaN/Inf loss. The tools/train.py of mmpretrain, mmdet and mmseg honour
# `runner_type` too.
runner_type = 'hivit_mm.ReliableRunner'
reliability = dict(
    non_finite='raise',  # 'skip': drop batches with a NaN/Inf loss, counted and logged
    max_non_finite_skips=None,  # with 'skip': stop after this many
    load_from_ignore_keys=[],  # regular expressions of keys a load_from may leave out
)
