"""Fusing reranker scores with first-stage scores: hand-computed cases and typed errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crossrank.errors import InvalidInputError, InvalidInputTypeError
from crossrank.fusion import fuse_scores, validate_first_stage_weight, zscore


def test_fused_scores_by_hand() -> None:
    model = [2.0, 1.9, -3.0]
    first = [5.0, 11.0, 4.0]
    # z(model): mean 0.3, std sqrt(16.34 / 3); z(first): mean 20/3, std sqrt(28.667 / 3).
    z_model = [(v - 0.3) / math.sqrt(16.34 / 3) for v in model]
    z_first = [(v - 20 / 3) / math.sqrt((25 / 9 + 169 / 9 + 64 / 9) / 3) for v in first]
    fused = fuse_scores(model, first, first_stage_weight=0.3)
    assert fused.tolist() == pytest.approx([0.7 * a + 0.3 * b for a, b in zip(z_model, z_first)])
    # The reranker's near-tie (2.0 vs 1.9) is broken by the retriever's clear preference.
    assert int(np.argmax(fused)) == 1
    assert int(np.argmax(fuse_scores(model, first, first_stage_weight=0.0))) == 0


def test_the_end_weights_give_each_order_alone() -> None:
    model = np.array([0.5, -1.0, 3.0, 2.0])
    first = np.array([10.0, 30.0, 20.0, 0.0])
    assert np.argsort(-fuse_scores(model, first, first_stage_weight=0.0)).tolist() == [2, 3, 0, 1]
    assert np.argsort(-fuse_scores(model, first, first_stage_weight=1.0)).tolist() == [1, 2, 0, 3]


def test_a_list_that_does_not_vary_contributes_nothing() -> None:
    assert zscore([4.0, 4.0, 4.0]).tolist() == [0.0, 0.0, 0.0]
    assert zscore([7.5]).tolist() == [0.0]
    assert zscore([]).size == 0
    model = [1.0, 3.0, 2.0]
    assert fuse_scores(model, [9.0, 9.0, 9.0], first_stage_weight=0.4).tolist() == pytest.approx((0.6 * zscore(model)).tolist())


def test_scale_of_either_score_does_not_matter() -> None:
    model, first = [0.2, 1.4, -0.7, 0.9], [12.0, 3.5, 8.0, 7.0]
    base = fuse_scores(model, first, first_stage_weight=0.35)
    shifted = fuse_scores([10 * v - 4 for v in model], [0.01 * v + 100 for v in first], first_stage_weight=0.35)
    assert shifted.tolist() == pytest.approx(base.tolist())


def test_bad_input_gets_a_typed_error() -> None:
    with pytest.raises(InvalidInputError, match="one per candidate: expected 3, received 2"):
        fuse_scores([1.0, 2.0, 3.0], [1.0, 2.0], first_stage_weight=0.5)
    with pytest.raises(InvalidInputError, match="finite numbers; candidate 1 has nan"):
        fuse_scores([1.0, 2.0], [1.0, float("nan")], first_stage_weight=0.5)
    with pytest.raises(InvalidInputError, match=r"in \[0, 1\]; received 1.5"):
        fuse_scores([1.0], [1.0], first_stage_weight=1.5)
    with pytest.raises(InvalidInputTypeError, match="a number in \\[0, 1\\]; received str '0.2'"):
        validate_first_stage_weight("0.2")
    with pytest.raises(InvalidInputTypeError, match="received bool True"):
        validate_first_stage_weight(True)
    assert validate_first_stage_weight(1) == 1.0


_finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.lists(st.tuples(_finite, _finite), min_size=1, max_size=40),
    weight=st.floats(min_value=0.0, max_value=1.0),
    scale=st.floats(min_value=0.01, max_value=100.0),
    shift=_finite,
)
def test_fused_scores_are_finite_and_ignore_each_lists_scale(
    pairs: list[tuple[float, float]], weight: float, scale: float, shift: float
) -> None:
    model = np.array([p[0] for p in pairs])
    first = np.array([p[1] for p in pairs])
    # Lists that vary by less than rounding error are neither clearly constant nor clearly ordered.
    assume(all(np.ptp(v) == 0.0 or np.ptp(v) > 1e-3 for v in (model, first)))
    fused = fuse_scores(model, first, first_stage_weight=weight)
    assert fused.shape == model.shape and np.all(np.isfinite(fused))
    # A positive affine change of either list leaves the fused values (and so the order) as they were.
    moved = fuse_scores(model * scale + shift, first * scale - shift, first_stage_weight=weight)
    assert np.allclose(moved, fused, atol=1e-6)
    # The fused value is a convex mix of two z-scores, so it is bounded by theirs.
    low = np.minimum(zscore(model), zscore(first)) - 1e-9
    high = np.maximum(zscore(model), zscore(first)) + 1e-9
    assert np.all((low <= fused) & (fused <= high))
