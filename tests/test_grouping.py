# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Tests of the Group Window Attention planner (hivit_mm.models.grouping)."""
import itertools

import numpy as np
import pytest

from hivit_mm.models.grouping import (ATTN_MACS, QKV_MACS, group_cost, knapsack_fill,
                                      pack_windows, plan_groups)


def check_plan(counts: np.ndarray, group: np.ndarray, offset: np.ndarray, group_size: int,
               num_groups: int) -> None:
    """Every non-empty window is placed once, inside one group, without overlap."""
    assert (group[counts == 0] == -1).all()
    placed = np.flatnonzero(counts)
    assert (group[placed] >= 0).all() and (group[placed] < num_groups).all()
    assert (offset[placed] >= 0).all()
    assert (offset[placed] + counts[placed] <= group_size).all()
    assert set(group[placed]) == set(range(num_groups))
    slots = np.concatenate([group[i] * group_size + offset[i] + np.arange(counts[i])
                            for i in placed] or [np.zeros(0, dtype=np.int64)])
    assert np.unique(slots).size == counts.sum()


def brute_min_groups(counts, group_size: int) -> int:
    """Fewest bins of ``group_size`` for ``counts``: DP over subsets of windows."""
    n = len(counts)
    best = [(n + 1, 0)] * (1 << n)  # (bins, fill of the last bin), lexicographic
    best[0] = (0, group_size)
    for used in range(1 << n):
        bins, fill = best[used]
        for i in range(n):
            if not used >> i & 1:
                step = (bins, fill + counts[i]) if fill + counts[i] <= group_size else (
                    bins + 1, counts[i])
                best[used | 1 << i] = min(best[used | 1 << i], step)
    return best[-1][0]


def released_num_groups(counts, window: int):
    """The release: ``g = min(M*M, max n)``; fill one group at a time as full as
    possible by a 0/1 knapsack over the remaining windows (weight = value = count)."""
    group_size = min(window * window, max(counts))
    remaining = [c for c in counts if c > 0]
    num_groups = 0
    while remaining:
        chosen = {0: ()}  # reachable fill -> windows giving it
        for i, c in enumerate(remaining):
            for total, windows in list(chosen.items()):
                if total + c <= group_size and total + c not in chosen:
                    chosen[total + c] = windows + (i, )
        picked = set(chosen[max(chosen)])
        remaining = [c for i, c in enumerate(remaining) if i not in picked]
        num_groups += 1
    return group_size, num_groups


def swin_b_counts(rng: np.random.Generator, stage: int, shift: int, batch: int = 1):
    """Visible tokens per shifted window: Swin-B at 224 px, 32-px units, 12 of 49 kept,
    window 7. Stage 0 is 56x56 tokens (8x8 per unit), stage 1 is 28x28 (4x4)."""
    unit, window = 8 >> stage, 7
    size = 7 * unit
    offset = (window - shift) % window
    cols = -(-(size + offset) // window)
    counts = []
    for _ in range(batch):
        visible = np.zeros(49, dtype=bool)
        visible[rng.permutation(49)[:12]] = True
        visible = visible.reshape(7, 7).repeat(unit, 0).repeat(unit, 1)  # size, size
        h, w = np.nonzero(visible)
        win = (h + offset) // window * cols + (w + offset) // window
        counts.append(np.bincount(win, minlength=cols * cols))
    return np.concatenate(counts)


def test_group_cost_counts_qkv_and_attention_macs():
    assert (QKV_MACS, ATTN_MACS) == (3, 2)
    assert group_cost(49, 128) == 3 * 49 * 128**2 + 2 * 49**2 * 128
    np.testing.assert_array_equal(group_cost(np.array([1, 2]), 4), [3 * 16 + 2 * 4,
                                                                    3 * 32 + 2 * 16])


@pytest.mark.parametrize('seed', range(5))
def test_pack_covers_every_window_once(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 50, 200) * (rng.random(200) < 0.7)
    for group_size in (49, 64, 100):
        group, offset, num_groups = pack_windows(counts, group_size)
        check_plan(counts, group, offset, group_size, num_groups)
        assert num_groups >= -(-counts.sum() // group_size)


def test_knapsack_fill_is_exact():
    """The bounded subset sum matches brute force over all multiplicities."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        hist = np.zeros(10, dtype=np.int64)
        hist[rng.integers(1, 10, 3)] = rng.integers(0, 4, 3)
        capacity = int(rng.integers(1, 30))
        take = knapsack_fill(hist, capacity)
        assert (take >= 0).all() and (take <= hist).all()
        best = max(
            sum(s * m for s, m in enumerate(mult))
            for mult in itertools.product(*[range(h + 1) for h in hist])
            if sum(s * m for s, m in enumerate(mult)) <= capacity)
        assert (take * np.arange(10)).sum() == best


def test_packing_is_optimal_on_small_cases():
    rng = np.random.default_rng(0)
    for _ in range(300):
        group_size = int(rng.integers(3, 25))
        counts = rng.integers(1, group_size + 1, int(rng.integers(1, 9)))
        assert pack_windows(counts, group_size)[2] == brute_min_groups(
            counts.tolist(), group_size)


def test_plan_is_never_worse_than_the_release():
    """Swin-B-like masks (one per batch, as released), stages 0 and 1, both shifts."""
    better = 0
    for seed, stage, shift in itertools.product(range(8), (0, 1), (0, 3)):
        counts = swin_b_counts(np.random.default_rng(seed), stage, shift)
        dim = 128 << stage
        plan = plan_groups(counts, dim)
        check_plan(counts, plan.group, plan.offset, plan.group_size, plan.num_groups)
        assert plan.cost == plan.num_groups * group_cost(plan.group_size, dim)
        group_size, num_groups = released_num_groups(counts.tolist(), 7)
        released = num_groups * group_cost(group_size, dim)
        assert plan.cost <= released
        better += plan.cost < released
    assert better >= 16  # of 32


def test_batched_per_sample_windows_pack_tightly():
    """Windows of 64 samples packed together: padding under 1% of the slots."""
    counts = swin_b_counts(np.random.default_rng(0), 0, 3, batch=64)
    plan = plan_groups(counts, 128)
    check_plan(counts, plan.group, plan.offset, plan.group_size, plan.num_groups)
    assert plan.num_groups * plan.group_size < 1.01 * counts.sum()


def test_plan_searches_the_group_size():
    """Windows of 2 and 3 tokens: one group of 5 (5 slots) beats two of 3 (6 slots)
    once the projections dominate, not at a tiny width."""
    wide = plan_groups(np.array([2, 0, 3]), dim=64)
    assert (wide.group_size, wide.num_groups) == (5, 1)
    np.testing.assert_array_equal(wide.group, [0, -1, 0])
    narrow = plan_groups(np.array([2, 0, 3]), dim=2)
    assert (narrow.group_size, narrow.num_groups) == (3, 2)


def test_rejects_bad_counts():
    with pytest.raises(ValueError, match='below the largest'):
        pack_windows(np.array([5, 9]), 8)
    with pytest.raises(ValueError, match='>= 0'):
        pack_windows(np.array([5, -1]), 8)
    with pytest.raises(ValueError, match='dim'):
        plan_groups(np.array([5]), 0)
    empty = plan_groups(np.zeros(4, dtype=np.int64), 32)
    assert empty.num_groups == 0 and (empty.group == -1).all()
