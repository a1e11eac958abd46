"""The keep/abstain decision: one pure function, used by the engine and by ``crossrank eval``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank import ConfigurationError
from crossrank.calibration import Calibration, PlattCalibrator
from crossrank.engine.decision import Policy, decide
from crossrank.evaluation.runner import decide as eval_decide

logits_lists = st.lists(st.floats(-20, 20, allow_nan=False), min_size=0, max_size=12)
thresholds = st.one_of(st.none(), st.floats(0.0, 1.0))
top_ks = st.one_of(st.none(), st.integers(1, 15))


@settings(max_examples=200, deadline=None)
@given(logits=logits_lists, threshold=thresholds, top_k=top_ks, weight=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_decision_invariants(logits: list[float], threshold: float | None, top_k: int | None, weight: float, seed: int) -> None:
    values = np.array(logits)
    first_stage = np.random.default_rng(seed).normal(size=len(values))
    decision = decide(values, Calibration(), Policy(threshold, top_k, weight), first_stage)
    assert sorted(decision.order) == list(range(len(values)))
    assert len(set(decision.kept)) == len(decision.kept) and set(decision.kept) <= set(decision.order)
    passing = [i for i in decision.order if threshold is None or decision.probabilities[i] >= threshold]
    assert set(decision.kept) == set(passing[: len(decision.kept)]) or weight > 0
    assert decision.dropped == len(values) - len(passing)
    assert decision.abstained == (threshold is not None and len(values) > 0 and not passing)
    if top_k is not None:
        assert len(decision.kept) <= top_k
    assert len(decision.kept) == min(len(passing), top_k or len(passing))
    probabilities = decision.probabilities
    if weight == 0.0:
        assert [probabilities[i] for i in decision.kept] == sorted((probabilities[i] for i in decision.kept), reverse=True)
    if len(values):
        assert decision.best_score == pytest.approx(float(max(probabilities)))
        assert np.all((probabilities >= 0) & (probabilities <= 1))


def test_decide_never_changes_its_inputs() -> None:
    logits = np.array([1.0, -1.0, 0.5])
    first = np.array([0.2, 0.9, 0.1])
    decide(logits, Calibration(), Policy(0.4, 2, 0.5), first)
    assert logits.tolist() == [1.0, -1.0, 0.5] and first.tolist() == [0.2, 0.9, 0.1]


def test_calibrated_threshold_uses_the_fitted_cut_and_rule() -> None:
    calibration = Calibration(PlattCalibrator(1.0, 0.0), threshold=0.5)
    decision = decide(np.array([2.0, -2.0]), calibration, Policy("calibrated"))
    assert decision.cut == 0.5 and decision.kept == (0,)
    rule = Calibration(PlattCalibrator(1.0, 0.0), threshold=0.5, abstention={"kind": "max-score", "min_top_score": 0.99})
    abstaining = decide(np.array([2.0, -2.0]), rule, Policy("calibrated"))
    assert abstaining.abstained and abstaining.kept == () and abstaining.dropped == 2
    # The abstention rule applies to the calibrated threshold only.
    assert decide(np.array([2.0, -2.0]), rule, Policy(0.5)).kept == (0,)
    with pytest.raises(ConfigurationError, match="fitted threshold"):
        decide(np.array([1.0]), Calibration(), Policy("calibrated"))


def test_fusion_reorders_the_kept_documents_only() -> None:
    logits = np.array([3.0, 2.0, -5.0])
    first = np.array([0.0, 10.0, 100.0])
    fused = decide(logits, Calibration(), Policy(threshold=0.5, first_stage_weight=0.9), first)
    assert fused.kept == (1, 0)  # document 2 is below the cut, whatever its retriever score
    alone = decide(logits, Calibration(), Policy(threshold=0.5), first)
    assert alone.kept == (0, 1)


@settings(max_examples=100, deadline=None)
@given(logits=logits_lists, threshold=thresholds)
def test_crossrank_eval_keeps_what_rerank_keeps(logits: list[float], threshold: float | None) -> None:
    calibration = Calibration(PlattCalibrator(0.7, 0.3))
    ids = [f"d{i}" for i in range(len(logits))]
    kept = eval_decide(calibration, threshold, dict(zip(ids, logits)))
    decision = decide(np.array(logits), calibration, Policy(threshold))
    assert list(kept) == [ids[i] for i in decision.kept]
