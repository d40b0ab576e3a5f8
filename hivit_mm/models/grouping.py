# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Group planning for GreenMIM's Group Window Attention.

Huang et al., "Green Hierarchical Vision Transformer for Masked Image Modeling",
NeurIPS 2022 (https://arxiv.org/abs/2205.13515). Written from the paper; the authors'
CC-BY-NC release (LayneH/GreenMIM, ``group_window_attention.py``) was read as a
specification only.

After masking, the (shifted) windows of a Swin stage hold different numbers ``n_i`` of
visible tokens. Group Window Attention packs whole windows into equal-size groups of ``g``
slots and runs one attention per group under a block mask. This module decides the
packing, on the host, from the counts alone:

* :func:`group_cost`: the multiply-accumulates one group costs,
  ``QKV_MACS * g * C**2 + ATTN_MACS * g**2 * C``. The qkv projection runs on every slot
  of the grouped tensor, padding included (``3 g C**2``); ``q @ k.T`` and
  ``attn @ v`` cost ``g**2 C`` each. The output projection and the MLP run on the visible
  tokens only (``GreenSwin`` scatters back before ``proj``), so they do not depend on the
  plan and are left out.
* :func:`pack_windows`: packs the windows into as few groups of size ``g`` as it can.
  Bin packing is NP-hard; this is the *minimum bin slack* heuristic: each new group takes
  the largest remaining window, then is filled as full as possible by an exact bounded
  subset-sum DP over the remaining windows (:func:`knapsack_fill`). Windows with the same
  count are interchangeable, so the DP runs on the histogram of counts, as bit-set
  operations over all capacities at once, with multiplicities split into powers of two;
  a fill is repeated while the histogram allows, so the number of DP runs is the number
  of distinct group patterns, not the number of windows. Placing the windows is then
  vectorised (numpy).
* :func:`plan_groups`: the paper's objective, ``num_groups(g) * group_cost(g, C)``
  minimised over every ``g`` from ``max n_i`` to a bound; candidates are visited by
  increasing lower bound of their cost, and the search stops once that bound reaches the
  best cost found, so only a few are packed.

Relation to the released code: it fixes ``g = min(M*M, max n_i)`` (a ``FIXME`` in the
code) and fills one group at a time with a 0/1 knapsack DP over all remaining windows,
without forcing the largest window in. Its ``g`` is among the candidates searched here;
the packings differ in heuristic only (both fill groups by exact DP), and on Swin-B-like
masks the plans here cost 0-19% less under :func:`group_cost`, never more (tested).
The release plans one mask shared by the whole batch; :class:`GreenSwin` also packs the
windows of all samples of a batch together (per-sample masks).
"""
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

__all__ = [
    'QKV_MACS', 'ATTN_MACS', 'GroupPlan', 'group_cost', 'knapsack_fill', 'pack_windows',
    'plan_groups'
]

QKV_MACS = 3  # qkv projection: 3 C**2 per slot (padding included)
ATTN_MACS = 2  # q @ k.T and attn @ v: C per (query, key) pair each


class GroupPlan(NamedTuple):
    """How the windows are packed into groups.

    Window ``i`` fills slots ``[offset[i], offset[i] + counts[i])`` of group
    ``group[i]``; a slot ``t`` of the flattened ``(num_groups * group_size)`` grouped
    tensor belongs to group ``t // group_size``.

    Attributes:
        group_size (int): ``g``, slots per group.
        num_groups (int): Number of groups.
        group (np.ndarray): ``(n,)`` int64 group of each window, -1 for empty windows.
        offset (np.ndarray): ``(n,)`` int64 first slot of each window inside its group
            (0 for empty windows).
        cost (int): ``num_groups * group_cost(group_size, dim)``.
    """
    group_size: int
    num_groups: int
    group: np.ndarray
    offset: np.ndarray
    cost: int


def group_cost(group_size, dim: int):
    """Multiply-accumulates of the attention of one group of ``group_size`` slots.

    Args:
        group_size (int | np.ndarray): ``g``, a scalar or an array of candidates.
        dim (int): ``C``, channels of the stage.

    Returns:
        int | np.ndarray: ``QKV_MACS * g * C**2 + ATTN_MACS * g**2 * C``.
    """
    return QKV_MACS * group_size * dim**2 + ATTN_MACS * group_size**2 * dim


def _fill(hist: List[int], capacity: int) -> Dict[int, int]:
    """:func:`knapsack_fill` on a list histogram; returns ``{size: multiplicity}``."""
    if capacity <= 0:
        return {}
    full = (1 << capacity + 1) - 1
    reach = 1  # bit t: t slots can be filled
    rows, chunks = [], []  # reach before each chunk; (size, copies) of each chunk
    for size in range(min(capacity, len(hist) - 1), 0, -1):  # largest first
        if not hist[size]:
            continue
        mult, copies = min(hist[size], capacity // size), 1
        while mult > 0 and not reach >> capacity:
            copies = min(copies, mult)
            rows.append(reach)
            chunks.append((size, copies))
            reach = (reach | reach << size * copies) & full  # add the chunk to every fill
            mult -= copies
            copies *= 2
        if reach >> capacity:  # a full group: nothing can do better
            break
    total, take = reach.bit_length() - 1, {}
    for row, (size, copies) in zip(reversed(rows), reversed(chunks)):
        if not row >> total & 1:  # backtrack: the chunk is used iff needed
            take[size] = take.get(size, 0) + copies
            total -= size * copies
    return take


def knapsack_fill(hist: np.ndarray, capacity: int) -> np.ndarray:
    """Bounded subset sum: the most slots of ``capacity`` that windows of ``hist`` fill.

    A 0/1 DP over capacities whose state, the set of reachable fills, is a bit set (a
    Python int, bit ``t`` set when ``t`` slots can be filled exactly), so adding an item
    of ``w`` tokens is one shift-or over all capacities at once. The ``m`` windows of one
    size are split into chunks of ``1, 2, 4, ..., rest`` windows (any number ``0..m`` is
    a sum of some of them), so the DP steps over ``(size, chunk)`` pairs, never over
    windows. Sizes go largest first and the DP stops at the first full group, so a
    typical fill takes a handful of steps.

    Args:
        hist (np.ndarray): ``(S,)`` number of windows of each size ``0..S-1``.
        capacity (int): Slots to fill.

    Returns:
        np.ndarray: ``(S,)`` multiplicities ``x <= hist`` maximising
        ``sum(size * x) <= capacity``.
    """
    take = np.zeros(len(hist), dtype=np.int64)
    for size, copies in _fill([int(h) for h in hist], capacity).items():
        take[size] = copies
    return take


def _patterns(hist: List[int], group_size: int) -> Tuple[List[Dict[int, int]], List[int]]:
    """Minimum-bin-slack fills of windows ``hist`` (by size) into ``group_size`` slots.

    Each fill takes the largest window left, then :func:`knapsack_fill` fills the rest.
    A fill is repeated while the histogram allows it: the windows left are a subset of
    those it was chosen from, so it stays optimal.

    Returns:
        tuple[list[dict[int, int]], list[int]]: Per distinct fill, ``{size: windows}``
        per group and its number of groups.
    """
    hist = list(hist)
    patterns, repeats = [], []
    left, largest = sum(hist), len(hist) - 1
    while left:
        while not hist[largest]:
            largest -= 1
        hist[largest] -= 1
        take = _fill(hist, group_size - largest)
        hist[largest] += 1
        take[largest] = take.get(largest, 0) + 1
        times = min(hist[size] // copies for size, copies in take.items())
        for size, copies in take.items():
            hist[size] -= times * copies
            left -= times * copies
        patterns.append(take)
        repeats.append(times)
    return patterns, repeats


def _place(counts: np.ndarray, group_size: int, patterns: List[Dict[int, int]],
           repeats: List[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Group and offset of every window from fill patterns (vectorised over windows)."""
    group = np.full(counts.size, -1, dtype=np.int64)
    offset = np.zeros(counts.size, dtype=np.int64)
    if not patterns:
        return group, offset
    # One record per (pattern, size): its windows, largest size first inside a group.
    take = np.zeros((len(patterns), group_size + 1), dtype=np.int64)  # p, g+1
    for i, pattern in enumerate(patterns):
        take[i, list(pattern)] = list(pattern.values())
    take = take[:, ::-1]  # p, g+1 (sizes descending)
    rec_pat, rec_col = np.nonzero(take)  # r, r (pattern-major)
    rec_size = group_size - rec_col  # r
    rec_per_group = take[rec_pat, rec_col]  # r
    tokens = take * np.arange(group_size, -1, -1)  # p, g+1
    rec_offset = (np.cumsum(tokens, axis=1) - tokens)[rec_pat, rec_col]  # r
    repeats = np.asarray(repeats)
    first_group = np.cumsum(repeats) - repeats  # p
    # Windows of one size are consumed record by record (pattern order).
    order = np.lexsort((rec_pat, rec_size))  # r, by size then pattern
    rec_len = (repeats[rec_pat] * rec_per_group)[order]  # r
    rec_start = np.cumsum(rec_len) - rec_len  # r
    local = np.arange(rec_len.sum()) - np.repeat(rec_start, rec_len)  # t
    per_group = np.repeat(rec_per_group[order], rec_len)  # t
    windows = np.flatnonzero(counts)
    by_size = counts[windows].astype(np.int16 if group_size < 2**15 else np.int64)
    windows = windows[np.argsort(by_size, kind='stable')]  # t, by size (radix sort)
    group[windows] = np.repeat(first_group[rec_pat[order]], rec_len) + local // per_group
    offset[windows] = (np.repeat(rec_offset[order], rec_len) +
                       (local % per_group) * np.repeat(rec_size[order], rec_len))
    return group, offset


def _histogram(counts: np.ndarray, group_size: int) -> List[int]:
    """Windows per size ``0..group_size`` (empty windows not counted), validated."""
    if counts.size and counts.min() < 0:
        raise ValueError(f'window counts must be >= 0, got {counts.min()}')
    if counts.size and counts.max() > group_size:
        raise ValueError(f'group_size {group_size} is below the largest window '
                         f'({counts.max()} tokens)')
    hist = np.bincount(counts, minlength=group_size + 1).tolist()  # g+1
    hist[0] = 0
    return hist


def pack_windows(counts: np.ndarray,
                 group_size: int) -> Tuple[np.ndarray, np.ndarray, int]:
    """Pack windows into groups of ``group_size`` slots (minimum bin slack).

    Args:
        counts (np.ndarray): ``(n,)`` visible tokens per window; zeros are skipped.
        group_size (int): ``g``, at least ``max(counts)``.

    Returns:
        tuple[np.ndarray, np.ndarray, int]: ``group (n,)`` (-1 for empty windows),
        ``offset (n,)`` as in :class:`GroupPlan`, and the number of groups.
    """
    counts = np.asarray(counts, dtype=np.int64).ravel()
    patterns, repeats = _patterns(_histogram(counts, group_size), group_size)
    return (*_place(counts, group_size, patterns, repeats), sum(repeats))


def plan_groups(counts: np.ndarray,
                dim: int,
                max_group_size: Optional[int] = None) -> GroupPlan:
    """Choose the group size and packing of least :func:`group_cost`.

    Minimises ``num_groups(g) * group_cost(g, dim)`` over ``g`` in
    ``[max(counts), max_group_size]``. Candidates are packed by increasing lower bound of
    their cost (``num_groups >= ceil(sum / g)`` and ``>=`` the windows larger than
    ``g / 2``), until that bound reaches the best cost found.

    Args:
        counts (np.ndarray): ``(n,)`` visible tokens per window (of every sample of the
            batch); zeros are skipped.
        dim (int): ``C``, channels of the stage.
        max_group_size (int, optional): Largest candidate ``g``. Defaults to
            ``4 * max(counts)``, capped at ``sum(counts)``.

    Returns:
        GroupPlan: The cheapest plan found.
    """
    counts = np.asarray(counts, dtype=np.int64).ravel()
    if dim <= 0:
        raise ValueError(f'dim must be positive, got {dim}')
    total = int(counts.sum())
    if total == 0:
        return GroupPlan(0, 0, np.full(counts.size, -1, dtype=np.int64),
                         np.zeros(counts.size, dtype=np.int64), 0)
    largest = int(counts.max())
    if max_group_size is None:
        max_group_size = 4 * largest
    if max_group_size < largest:
        raise ValueError(f'max_group_size {max_group_size} is below the largest window '
                         f'({largest} tokens)')
    sizes = np.arange(largest, min(max_group_size, total) + 1)  # candidates
    ascending = np.sort(counts[counts > 0])
    big = ascending.size - np.searchsorted(ascending, sizes // 2, side='right')
    bound = np.maximum(-(-total // sizes), big) * group_cost(sizes, dim)
    hist = _histogram(counts, largest)
    best = None  # (cost, g, patterns, repeats)
    for i in np.argsort(bound, kind='stable').tolist():
        if best is not None and bound[i] >= best[0]:
            break
        g = int(sizes[i])
        patterns, repeats = _patterns(hist, g)
        cost = sum(repeats) * int(group_cost(g, dim))
        if best is None or cost < best[0]:
            best = (cost, g, patterns, repeats)
    cost, g, patterns, repeats = best
    return GroupPlan(g, sum(repeats), *_place(counts, g, patterns, repeats), cost)
