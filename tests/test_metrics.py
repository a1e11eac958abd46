"""Ranking, abstention and calibration metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossrank.errors import InvalidInputError
from crossrank.evaluation.metrics import (
    expected_calibration_error,
    false_evidence_rate,
    hit_rate,
    per_query_metric,
    ranking_metrics,
    reliability_bins,
    separation_auc,
)
from crossrank.evaluation.significance import paired_bootstrap, randomization_test

pytest.importorskip("ranx")

GRADED_QRELS = {"q1": {"a": 2, "b": 1, "c": 0}}
# Ranked b (1), c (0), a (2).
GRADED_RUN = {"q1": {"a": 0.1, "b": 0.9, "c": 0.5}}


def test_graded_ndcg_by_hand() -> None:
    dcg = 1 / math.log2(2) + 0 + 2 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert per_query_metric(GRADED_QRELS, GRADED_RUN, "ndcg@3")["q1"] == pytest.approx(dcg / ideal)
    # At k=1 only b is seen: gain 1 against an ideal gain of 2.
    assert per_query_metric(GRADED_QRELS, GRADED_RUN, "ndcg@1")["q1"] == pytest.approx(0.5)


def test_binary_metrics_by_hand() -> None:
    qrels = {"q": {"a": 1, "d": 1}}
    run = {"q": {"x": 0.9, "a": 0.8, "y": 0.7, "d": 0.6}}
    values = ranking_metrics(qrels, run, ["mrr@10", "map", "recall@2", "recall@4", "precision@2", "hit@1", "hit@2"])
    assert values["mrr@10"] == pytest.approx(0.5)
    assert values["map"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert values["recall@2"] == pytest.approx(0.5)
    assert values["recall@4"] == pytest.approx(1.0)
    assert values["precision@2"] == pytest.approx(0.5)
    assert values["hit@1"] == 0.0
    assert values["hit@2"] == 1.0


def test_ties_are_broken_by_document_id() -> None:
    qrels = {"q": {"b": 1}}
    # a and b tie; a sorts first, so the relevant b is at rank 2.
    assert per_query_metric(qrels, {"q": {"b": 0.5, "a": 0.5}}, "mrr@10")["q"] == pytest.approx(0.5)
    assert per_query_metric(qrels, {"q": {"c": 0.5, "b": 0.5}}, "mrr@10")["q"] == pytest.approx(1.0)


def test_empty_runs_and_unjudged_queries() -> None:
    qrels = {"answered": {"a": 1}, "abstained": {"b": 1}, "no_relevant": {"c": 0}}
    run = {"answered": {"a": 1.0}, "abstained": {}, "no_relevant": {"c": 1.0}}
    values = per_query_metric(qrels, run, "ndcg@10")
    # Queries without a relevant judgement are not evaluated; an empty list scores zero.
    assert values == {"abstained": 0.0, "answered": 1.0}
    assert ranking_metrics(qrels, run, ["ndcg@10"])["ndcg@10"] == pytest.approx(0.5)
    assert ranking_metrics(qrels, {}, ["recall@10"])["recall@10"] == 0.0


def test_unknown_metric_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="unknown metric"):
        ranking_metrics({"q": {"a": 1}}, {"q": {"a": 1.0}}, ["bleu@4"])


def test_false_evidence_and_hit_rate() -> None:
    answerable = {"a": True, "b": True, "c": False, "d": False, "e": False}
    answered = {"a": True, "b": False, "c": True, "d": False, "e": False}
    assert false_evidence_rate(answered, answerable) == pytest.approx(1 / 3)
    assert hit_rate(answered, answerable) == pytest.approx(1 / 2)
    assert math.isnan(false_evidence_rate({"a": True}, {"a": True}))
    with pytest.raises(InvalidInputError, match="no decision"):
        hit_rate({}, {"a": True})


def test_expected_calibration_error_by_hand() -> None:
    # Bin [0.2, 0.3): mean 0.2, positive rate 0.5; bin [0.8, 0.9): mean 0.8, rate 1.0.
    p = [0.2, 0.2, 0.8, 0.8]
    y = [0, 1, 1, 1]
    assert expected_calibration_error(p, y, bins=10) == pytest.approx(0.5 * 0.3 + 0.5 * 0.2)
    assert expected_calibration_error([0.0, 1.0], [0, 1], bins=10) == 0.0
    table = reliability_bins([1.0, 0.05], [1, 0], bins=10)
    assert table.counts[-1] == 1 and table.counts[0] == 1
    assert math.isnan(expected_calibration_error([], []))


def test_paired_tests_detect_a_consistent_improvement() -> None:
    rng = np.random.default_rng(0)
    base = {str(i): float(v) for i, v in enumerate(rng.random(60))}
    better = {k: v + 0.1 for k, v in base.items()}
    assert paired_bootstrap(base, better, samples=2000).p_value < 0.01
    assert randomization_test(base, better, samples=2000).p_value < 0.01
    same = randomization_test(base, dict(base), samples=2000)
    assert same.p_value == 1.0 and same.difference == 0.0
    with pytest.raises(InvalidInputError, match="same queries"):
        paired_bootstrap(base, {"x": 1.0})


def test_separation_auc_by_hand() -> None:
    answerable = {"a1": True, "a2": True, "n1": False, "n2": False}
    # a1 beats both no-answer queries, a2 beats n2 and ties n1: (2 + 1 + 0.5) / 4.
    assert separation_auc({"a1": 3.0, "a2": 1.0, "n1": 1.0, "n2": -2.0}, answerable) == pytest.approx(0.875)
    assert separation_auc({"a1": 3.0, "a2": 2.0, "n1": 1.0, "n2": 0.0}, answerable) == 1.0
    assert separation_auc({"a1": -3.0, "a2": -2.0, "n1": 1.0, "n2": 0.0}, answerable) == 0.0
    # A query with nothing scored ranks lowest; with one kind only there is nothing to separate.
    assert separation_auc({"a1": -np.inf, "a2": 2.0, "n1": 1.0, "n2": 0.0}, answerable) == pytest.approx(0.5)
    assert math.isnan(separation_auc({"a1": 1.0}, {"a1": True}))
    with pytest.raises(InvalidInputError, match="n2"):
        separation_auc({"a1": 1.0, "a2": 1.0, "n1": 0.0}, answerable)
