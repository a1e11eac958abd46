"""Batches bounded by a token budget: sort by length, pad per batch, never exceed the budget."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["plan_batches", "pad_batch"]


def plan_batches(lengths: Sequence[int], *, batch_size: int, token_budget: int) -> list[list[int]]:
    """Group row indices into batches, longest first, so that ``rows * longest <= token_budget``.

    Rows of similar length share a batch (little padding waste); a row longer than the budget
    runs alone. Memory per model call is therefore bounded by the budget, however many rows.

    Example:
        >>> plan_batches([5, 3, 9, 4], batch_size=2, token_budget=100)
        [[2, 0], [3, 1]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        length = lengths[index]
        if current and (len(current) >= batch_size or (len(current) + 1) * max(longest, length) > token_budget):
            batches.append(current)
            current, longest = [], 0
        current.append(index)
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches


def pad_batch(
    rows: Sequence[tuple[np.ndarray, np.ndarray]], pad_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-pad ``(input_ids, token_type_ids)`` rows to the batch's longest row."""
    length = max(len(ids) for ids, _ in rows)
    input_ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    attention = np.zeros((len(rows), length), dtype=np.int64)
    types = np.zeros((len(rows), length), dtype=np.int64)
    for r, (ids, type_ids) in enumerate(rows):
        input_ids[r, : len(ids)] = ids
        attention[r, : len(ids)] = 1
        types[r, : len(ids)] = type_ids
    return input_ids, attention, types
