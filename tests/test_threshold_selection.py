"""Threshold selection with a known answer; relative, gap and precision cut-offs."""

from __future__ import annotations

import numpy as np
import pytest

from crossrank.abstention import fit_logistic_rule, should_abstain
from crossrank.errors import ConfigurationError, InvalidInputError
from crossrank.evaluation.thresholds import (
    candidate_thresholds,
    gap_cutoff,
    precision_threshold,
    relative_cutoff,
    select_threshold,
)

# Top scores: answerable queries 0.95, 0.9, 0.8, 0.6, 0.3; no-answer queries 0.85, 0.7, 0.5, 0.4, 0.2.
ANSWERABLE = {"a1": 0.95, "a2": 0.9, "a3": 0.8, "a4": 0.6, "a5": 0.3}
NO_ANSWER = {"n1": 0.85, "n2": 0.7, "n3": 0.5, "n4": 0.4, "n5": 0.2}
RUN = {q: {"d": s, "e": s / 2} for q, s in {**ANSWERABLE, **NO_ANSWER}.items()}
LABELS = {**{q: True for q in ANSWERABLE}, **{q: False for q in NO_ANSWER}}


def test_constrained_selection_has_the_known_answer() -> None:
    # FER <= 0.4 allows two of five no-answer queries through: the cut must sit between 0.5 and 0.7,
    # answering a1..a4 (hit rate 0.8) and n1, n2.
    choice = select_threshold(RUN, LABELS, max_false_evidence=0.4)
    assert choice.feasible
    assert 0.5 < choice.threshold <= 0.6
    assert choice.hit_rate == pytest.approx(0.8)
    assert choice.false_evidence_rate == pytest.approx(0.4)
    # A tighter budget of 0.2 only lets n1 through: cut in (0.7, 0.8], hit rate 0.6.
    tight = select_threshold(RUN, LABELS, max_false_evidence=0.2)
    assert 0.7 < tight.threshold <= 0.8 and tight.hit_rate == pytest.approx(0.6)


def test_ranking_objective_counts_abstained_queries_as_zero() -> None:
    qrels = {q: {"d": 1} for q in ANSWERABLE}
    choice = select_threshold(RUN, LABELS, max_false_evidence=0.4, objective="ndcg@10", qrels=qrels)
    assert choice.objective_value == pytest.approx(0.8)


def test_infeasible_constraint_falls_back_to_lowest_false_evidence() -> None:
    run = {"a": {"d": 0.1}, "n": {"d": 0.9}}
    choice = select_threshold(run, {"a": True, "n": False}, max_false_evidence=0.0)
    assert choice.feasible  # abstaining on everything meets the constraint
    assert choice.false_evidence_rate == 0.0 and choice.hit_rate == 0.0
    with pytest.raises(InvalidInputError):
        select_threshold(run, {"a": True, "n": False}, max_false_evidence=1.5)


def test_candidate_thresholds_are_midpoints() -> None:
    assert candidate_thresholds([0.2, 0.6, 0.6, 1.0]).tolist()[:3] == [0.0, 0.4, 0.8]


def test_precision_threshold() -> None:
    assert precision_threshold([0.9, 0.8, 0.7, 0.6], [1, 1, 0, 1], 0.75) == pytest.approx(0.6)
    assert precision_threshold([0.9, 0.8, 0.7, 0.6], [1, 1, 0, 1], 1.0) == pytest.approx(0.8)
    assert precision_threshold([0.9], [0], 0.5) is None


def test_relative_and_gap_cutoffs() -> None:
    scores = [0.9, 0.85, 0.5, 0.45, 0.1]
    assert relative_cutoff(scores, 0.5) == 4
    assert relative_cutoff([], 0.5) == 0
    assert gap_cutoff(scores, 0.3) == 2
    assert gap_cutoff(scores, 0.5) == 5
    with pytest.raises(InvalidInputError):
        relative_cutoff(scores, 2.0)


def test_logistic_abstention_rule_separates_by_gap() -> None:
    # Answerable queries have one clear winner; no-answer queries have flat score lists.
    rng = np.random.default_rng(1)
    ranked, labels = [], []
    for i in range(200):
        answerable = i % 2 == 0
        logits = np.sort(rng.normal(0, 0.3, 10))[::-1]
        if answerable:
            logits[0] += 3.0
        logits = np.sort(logits)[::-1] + 2.0
        ranked.append((1 / (1 + np.exp(-logits)), logits))
        labels.append(answerable)
    rule = fit_logistic_rule(ranked, labels, features=("gap_logit",))
    decisions = [not should_abstain(rule, p, z) for p, z in ranked]
    assert np.mean(np.array(decisions) == np.array(labels)) > 0.95
    with pytest.raises(ConfigurationError, match="one finite weight"):
        should_abstain({**rule, "weights": []}, ranked[0][0], ranked[0][1])


def test_raw_score_thresholds_are_not_clipped() -> None:
    # Logits are not probabilities: the chosen cut between -1 and 2 must come back as it is.
    run = {q: {} for q in ("a", "b", "n")}
    choice = select_threshold(run, {"a": True, "b": True, "n": False}, max_false_evidence=0.0,
                              confidence={"a": 5.0, "b": 2.0, "n": -1.0}, clip=False)
    assert choice.threshold == pytest.approx(0.5) and choice.hit_rate == 1.0 and choice.false_evidence_rate == 0.0
    above = select_threshold(run, {"a": True, "b": False, "n": False}, max_false_evidence=0.0,
                             confidence={"a": 5.0, "b": 2.0, "n": -1.0}, clip=False)
    assert above.threshold == pytest.approx(3.5)
    assert select_threshold(run, {"a": True, "b": False, "n": False}, max_false_evidence=0.0,
                            confidence={"a": 5.0, "b": 2.0, "n": -1.0}).threshold == 1.0
