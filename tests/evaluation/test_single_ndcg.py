"""One nDCG: the trainer's and the evaluation's give the same number, ties included, and agree
with ranx on integer grades."""

from __future__ import annotations

import math
import random

import pytest

from crossrank.errors import InvalidInputError
from crossrank.evaluation.metrics import _tie_broken, ndcg, per_query_metric, rank_by_score, ranking_metrics
from crossrank.training.metrics import mean_ndcg, ndcg_at_k


def test_ties_are_broken_by_document_id_and_nan_ranks_last() -> None:
    assert rank_by_score({"b": 1.0, "a": 1.0, "c": 2.0, "n": float("nan"), "z": -5.0}) == ["c", "a", "b", "z", "n"]


def test_trainer_and_evaluation_give_the_same_number_on_tied_scores() -> None:
    # "a" (not relevant) and "b" (relevant) tie: "a" ranks first by id, so nDCG@10 = 1 / log2(3).
    scores = {"b": 0.5, "a": 0.5, "c": 0.1}
    judgments = {"b": 1, "c": 0}
    expected = 1 / math.log2(3)
    assert ndcg_at_k(scores, judgments, 10) == pytest.approx(expected)
    assert per_query_metric({"q": judgments}, {"q": scores}, "ndcg@10")["q"] == pytest.approx(expected)
    assert ndcg(judgments, scores, 10) == pytest.approx(expected)

    rng = random.Random(7)
    qrels = {f"q{i}": {f"d{j}": rng.choice([0, 0, 1, 2, 3]) for j in range(8)} for i in range(30)}
    run = {q: {d: float(rng.randint(0, 3)) for d in judged} for q, judged in qrels.items()}  # many ties
    trainer = mean_ndcg(run, qrels, 10)
    evaluation = ranking_metrics(qrels, run, ["ndcg@10"])["ndcg@10"]
    assert trainer == pytest.approx(evaluation, abs=1e-12)
    # A ranked list is its own order: the same number as the scores it came from.
    assert mean_ndcg({q: rank_by_score(s) for q, s in run.items()}, qrels, 10) == pytest.approx(trainer, abs=1e-12)


def test_the_one_ndcg_matches_ranx_on_integer_grades() -> None:
    ranx = pytest.importorskip("ranx")
    rng = random.Random(3)
    qrels = {f"q{i}": {f"d{j}": rng.choice([0, 1, 1, 2, 4]) for j in range(rng.randint(1, 12))} for i in range(40)}
    qrels = {q: j for q, j in qrels.items() if any(g > 0 for g in j.values())}
    run = {q: {f"d{j}": float(rng.randint(0, 5)) for j in range(15)} for q in qrels}
    for k in (1, 3, 10, None):
        ours = per_query_metric(qrels, run, "ndcg" + (f"@{k}" if k else ""))
        reference = ranx.evaluate(
            ranx.Qrels({q: {d: g for d, g in j.items() if g > 0} for q, j in qrels.items()}),
            ranx.Run({q: _tie_broken(s) for q, s in run.items()}),
            "ndcg" + (f"@{k}" if k else ""),
            return_mean=False,
            make_comparable=False,
        )
        assert [ours[q] for q in sorted(qrels)] == pytest.approx(list(reference), abs=1e-12)


def test_fractional_grades_count_as_they_are() -> None:
    # ranx would read 1.5 and 0.5 as 1 and 0; the one nDCG keeps them.
    value = ndcg({"a": 1.5, "b": 0.5}, {"a": 0.1, "b": 0.9}, 10)
    assert value == pytest.approx((0.5 + 1.5 / math.log2(3)) / (1.5 + 0.5 / math.log2(3)))
    assert ndcg_at_k(["b", "a"], {"a": 1.5, "b": 0.5}) == pytest.approx(value)


def test_rankings_and_cut_offs_are_checked() -> None:
    with pytest.raises(InvalidInputError, match=r"each document once; received \['a'\]"):
        ndcg_at_k(["a", "b", "a"], {"a": 1})
    with pytest.raises(InvalidInputError, match="cut-off must be >= 1"):
        ndcg({"a": 1}, {"a": 1.0}, 0)
    assert ndcg_at_k([], {"a": 1}) == 0.0
    assert ndcg_at_k(["a"], {"a": 0}) == 0.0  # nothing relevant: not evaluated, 0
    assert mean_ndcg({"q": ["a"], "unjudged": ["b"]}, {"q": {"a": 2}}) == 1.0
