"""Retrieval, abstention and calibration metrics.

Ranking metrics: nDCG@k by :func:`ndcg` (linear graded gains, as trec_eval and BEIR compute it;
the one nDCG of the project, also behind the trainer's dev metric), MRR@k, MAP, Recall@k,
Precision@k and Hit@k by ranx. The conventions are the same for all of them:

* Only queries with at least one relevant judgement (grade > 0) are evaluated, as trec_eval does;
  a grade of 0 or below counts as not relevant (gain 0).
* A query whose run is empty (the reranker abstained, or nothing was retrieved) scores 0.
* Ties: documents are ranked by descending score, tied scores by document id ascending
  (:func:`rank_by_score`), so results never depend on dict order; a NaN score ranks last.

nDCG has its own implementation because ranx reads grades as integers: a fractional grade (the
trainer's ``graded`` data allows any number) would be truncated. On integer grades it gives
ranx's value (tested).

Abstention metrics work on query-level decisions: the *false-evidence rate* is the share of
queries without an answer in the corpus for which passages were still returned, and the *hit
rate* is the share of answerable queries for which passages were returned.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from crossrank.errors import InvalidInputError, missing_dependency

__all__ = [
    "RANKING_METRICS",
    "ReliabilityBins",
    "expected_calibration_error",
    "false_evidence_rate",
    "hit_rate",
    "ndcg",
    "per_query_metric",
    "rank_by_score",
    "ranking_metrics",
    "reliability_bins",
    "separation_auc",
]

RANKING_METRICS = ("ndcg", "mrr", "map", "recall", "precision", "hit")
_METRIC = re.compile(r"^(ndcg|mrr|map|recall|precision|hit)(?:@(\d+))?$")
_RANX_NAMES = {"ndcg": "ndcg", "mrr": "mrr", "map": "map", "recall": "recall", "precision": "precision", "hit": "hit_rate"}

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def _parse(metric: str) -> tuple[str, int | None]:
    match = _METRIC.match(metric.lower())
    if match is None:
        raise InvalidInputError(
            f"unknown metric {metric!r}; expected one of {RANKING_METRICS} with an optional @k, e.g. 'ndcg@10'"
        )
    k = int(match.group(2)) if match.group(2) else None
    if k is not None and k < 1:
        raise InvalidInputError(f"metric cut-off must be >= 1; received {metric!r}")
    return match.group(1), k


def rank_by_score(scores: Mapping[str, float]) -> list[str]:
    """Document ids best first: descending score, ties by document id ascending, NaN last.

    This is the tie rule of every ranking metric here.

    Example:
        >>> rank_by_score({"b": 1.0, "a": 1.0, "c": 2.0})
        ['c', 'a', 'b']
    """
    def order(doc_id: str) -> tuple[bool, float, str]:
        value = float(scores[doc_id])
        return (math.isnan(value), -value if not math.isnan(value) else 0.0, doc_id)

    return sorted(scores, key=order)


def ndcg(judgments: Mapping[str, float], scores: Mapping[str, float], k: int | None = None) -> float:
    """nDCG@k of one query with linear graded gains: ``sum(grade / log2(rank + 1))`` over the ideal.

    Documents are ranked by :func:`rank_by_score`; grades of 0 or below count as not relevant.
    A query without a relevant judgement scores 0 (metrics over many queries leave it out).

    Args:
        judgments: ``{doc_id: grade}``; grades may be fractional.
        scores: ``{doc_id: score}``, higher is better.
        k: Cut-off (None: the whole ranking).

    Example:
        >>> round(ndcg({"b": 1}, {"a": 0.9, "b": 0.2}, 10), 4)
        0.6309
    """
    if k is not None and k < 1:
        raise InvalidInputError(f"nDCG cut-off must be >= 1; received {k}")
    gains = {d: float(g) for d, g in judgments.items() if g > 0}
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    if idcg <= 0:
        return 0.0
    ranked = rank_by_score(scores)[:k]
    dcg = sum(gains.get(doc_id, 0.0) / math.log2(rank + 2) for rank, doc_id in enumerate(ranked))
    return dcg / idcg


def per_query_metric(qrels: Qrels, run: Run, metric: str) -> dict[str, float]:
    """One metric per evaluated query (queries with at least one relevant judgement)."""
    name, k = _parse(metric)
    evaluated = sorted(q for q, judged in qrels.items() if any(g > 0 for g in judged.values()))
    if name == "ndcg":
        return {q: ndcg(qrels[q], run.get(q) or {}, k) for q in evaluated}
    try:
        import ranx
    except ImportError:
        raise missing_dependency("ranx", "eval", "ranking metrics") from None
    values = {q: 0.0 for q in evaluated}
    non_empty = [q for q in evaluated if run.get(q)]
    if not non_empty:
        return values
    from numba.core.errors import NumbaTypeSafetyWarning

    with warnings.catch_warnings():
        # When numba compiles ranx's metrics (their first use after installation) it warns, with
        # raw terminal colour codes, about casting a parallel loop's index from uint64 to int64;
        # the index is a query number, so nothing is lost. Only that category, only here.
        warnings.filterwarnings("ignore", category=NumbaTypeSafetyWarning)
        ranx_qrels = ranx.Qrels({q: {d: int(g) for d, g in qrels[q].items() if g > 0} for q in non_empty})
        ranx_run = ranx.Run({q: _tie_broken(run[q]) for q in non_empty})
        ranx_metric = _RANX_NAMES[name] + (f"@{k}" if k is not None else "")
        scores = ranx.evaluate(ranx_qrels, ranx_run, ranx_metric, return_mean=False, make_comparable=False)
    # ranx returns per-query values in the order of its sorted query ids.
    for query_id, value in zip(sorted(non_empty), np.asarray(scores, dtype=np.float64).reshape(-1)):
        values[query_id] = float(value)
    return values


def _tie_broken(scores: Mapping[str, float]) -> dict[str, float]:
    """Replace scores by strictly decreasing ones in :func:`rank_by_score` order."""
    order = rank_by_score(scores)
    return {doc_id: float(len(order) - rank) for rank, doc_id in enumerate(order)}


def ranking_metrics(qrels: Qrels, run: Run, metrics: Sequence[str]) -> dict[str, float]:
    """Mean of each metric over the evaluated queries (0.0 when there are none).

    Example:
        >>> ranking_metrics({"q": {"a": 1}}, {"q": {"a": 0.2, "b": 0.9}}, ["mrr@10"])  # doctest: +SKIP
        {'mrr@10': 0.5}
    """
    out: dict[str, float] = {}
    for metric in metrics:
        values = per_query_metric(qrels, run, metric)
        out[metric.lower()] = float(np.mean(list(values.values()))) if values else 0.0
    return out


def _rate(decisions: Mapping[str, bool], answerable: Mapping[str, bool], want_answerable: bool) -> float:
    queries = [q for q, has_answer in answerable.items() if bool(has_answer) == want_answerable]
    if not queries:
        return float("nan")
    missing = [q for q in queries if q not in decisions]
    if missing:
        raise InvalidInputError(f"no decision for {len(missing)} queries, e.g. {missing[0]!r}")
    return sum(1 for q in queries if decisions[q]) / len(queries)


def false_evidence_rate(answered: Mapping[str, bool], answerable: Mapping[str, bool]) -> float:
    """Share of queries *without* an answer for which passages were returned (NaN if there are none).

    Args:
        answered: Per query, whether the reranker returned at least one passage.
        answerable: Per query, whether the corpus holds an answer.
    """
    return _rate(answered, answerable, want_answerable=False)


def hit_rate(answered: Mapping[str, bool], answerable: Mapping[str, bool]) -> float:
    """Share of answerable queries for which passages were returned (NaN if there are none)."""
    return _rate(answered, answerable, want_answerable=True)


def separation_auc(confidence: Mapping[str, float], answerable: Mapping[str, bool]) -> float:
    """How well a per-query confidence tells answerable queries from no-answer ones, with no cut.

    The ROC AUC: the probability that a random answerable query has a higher confidence than a
    random no-answer query, ties counting one half. 1 separates perfectly, 0.5 is chance. NaN
    when either kind is missing. A query without a finite confidence (nothing scored) counts as
    the lowest.

    Example:
        >>> separation_auc({"a": 0.9, "b": 0.4, "n": 0.5}, {"a": True, "b": True, "n": False})
        0.5
    """
    missing = sorted(set(answerable) - set(confidence))
    if missing:
        raise InvalidInputError(f"every labelled query needs a confidence; missing for {missing[:5]}")
    values = np.array([confidence[q] for q in answerable], dtype=np.float64)
    values = np.where(np.isnan(values), -np.inf, values)
    labels = np.array([bool(answerable[q]) for q in answerable])
    positives, negatives = values[labels], values[~labels]
    if positives.size == 0 or negatives.size == 0:
        return float("nan")
    greater = (positives[:, None] > negatives[None, :]).sum()
    equal = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * equal) / (positives.size * negatives.size))


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width probability bins: edges, mean confidence, positive rate and count per bin."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray


def reliability_bins(probabilities: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray, bins: int = 15) -> ReliabilityBins:
    """Group predictions into ``bins`` equal-width bins on [0, 1] (1.0 falls in the last bin)."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if p.size != y.size:
        raise InvalidInputError(f"need one label per probability; received {p.size} and {y.size}")
    if bins < 1:
        raise InvalidInputError(f"bins must be >= 1; received {bins}")
    if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
        raise InvalidInputError("probabilities must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(index, weights=p, minlength=bins) / counts
        accuracy = np.bincount(index, weights=y, minlength=bins) / counts
    return ReliabilityBins(edges=edges, confidence=confidence, accuracy=accuracy, counts=counts)


def expected_calibration_error(
    probabilities: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray, bins: int = 15
) -> float:
    """ECE: count-weighted mean of ``|positive rate - mean probability|`` over equal-width bins.

    Example:
        >>> expected_calibration_error([0.2, 0.2, 0.8, 0.8], [0, 0, 1, 1], bins=10)
        0.2
    """
    table = reliability_bins(probabilities, labels, bins)
    total = table.counts.sum()
    if total == 0:
        return float("nan")
    used = table.counts > 0
    gaps = np.abs(table.accuracy[used] - table.confidence[used])
    return float(np.round(np.sum(gaps * table.counts[used]) / total, 12))
