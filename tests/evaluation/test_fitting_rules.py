"""Fitting from labelled queries: groups held out together, the held-out ECE interval, the data rule."""

from __future__ import annotations

import numpy as np
import pytest

from crossrank.errors import InvalidInputError
from crossrank.evaluation.fitting import LabelledQueries, check_enough, drift_reference, fit_labelled


def _data(groups: int, per_group: int, seed: int = 0) -> LabelledQueries:
    rng = np.random.default_rng(seed)
    logits, labels, group_of = {}, {}, {}
    for g in range(groups):
        for i in range(per_group):
            q = f"g{g}-i{i}"
            relevant = rng.random(6) < 0.3
            scores = rng.normal(0, 1, 6) + 2.5 * relevant
            logits[q] = {f"d{j}": float(scores[j]) for j in range(6)}
            labels[q] = {f"d{j}": float(relevant[j]) for j in range(6)}
            group_of[q] = f"g{g}"
    answerable = {q: any(v > 0 for v in docs.values()) for q, docs in labels.items()}
    return LabelledQueries(logits, labels, answerable=answerable, groups=group_of, source="synthetic")


def test_queries_of_one_group_are_held_out_together() -> None:
    data = _data(groups=10, per_group=3)
    _, report = fit_labelled(data, kinds=("platt",), holdout=0.3, abstention_rules=(), bootstrap_samples=200)
    held = report["held_out"]
    assert held["queries"] == 9 and held["fitted_on_queries"] == 21  # 3 of 10 groups, 3 queries each
    low, high = held["ece_interval"]
    assert low <= held["ece"] <= high
    # Without groups the same data is held out query by query: 9 of 30 queries, drawn freely.
    data.groups = None
    _, report = fit_labelled(data, kinds=("platt",), holdout=0.3, abstention_rules=())
    assert report["held_out"]["queries"] == 9


def test_fitting_on_each_querys_top_documents() -> None:
    data = _data(groups=30, per_group=1)
    _, everything = fit_labelled(data, kinds=("platt",), abstention_rules=())
    _, top = fit_labelled(data, kinds=("platt",), abstention_rules=(), top=2)
    assert everything["fit_pairs"] == 180 and top["fit_pairs"] == 60
    assert top["held_out"]["fit_top"] == 2 and top["held_out"]["pairs"] == 18
    assert check_enough(data, top=2)["pairs"] == 60


def test_the_data_rule_and_the_drift_reference() -> None:
    small = _data(groups=8, per_group=1)
    with pytest.raises(InvalidInputError, match=r"8 labelled queries \(need 25: 17 more\)"):
        check_enough(small, "a file")
    assert drift_reference(small) is None  # fewer than 10 queries: no reference
    reference = drift_reference(_data(groups=30, per_group=1))
    assert reference is not None and reference["queries"] == 30 and sum(reference["shares"]) == pytest.approx(1.0)
