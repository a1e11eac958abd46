"""Choosing cut-offs: constrained query-level thresholds, precision targets, relative cut-offs.

The main tool is :func:`select_threshold`: among thresholds on a per-query confidence (by default
the best calibrated score), maximise an objective (hit rate, nDCG@k, Recall@k) subject to a
false-evidence rate on no-answer queries of at most ``max_false_evidence``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from crossrank.errors import InvalidInputError
from crossrank.evaluation.metrics import false_evidence_rate, hit_rate, ranking_metrics

__all__ = [
    "ThresholdChoice",
    "candidate_thresholds",
    "cut_run",
    "gap_cutoff",
    "precision_threshold",
    "relative_cutoff",
    "select_threshold",
    "threshold_curve",
]

Run = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class ThresholdChoice:
    """A selected threshold and what it achieved on the data it was selected on.

    ``feasible`` is False when no threshold met the constraint; the threshold is then the one with
    the lowest false-evidence rate.
    """

    threshold: float
    objective: str
    objective_value: float
    false_evidence_rate: float
    hit_rate: float
    max_false_evidence: float
    feasible: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def candidate_thresholds(confidences: Sequence[float] | np.ndarray) -> np.ndarray:
    """Thresholds at which decisions change: midpoints between distinct values, plus both ends."""
    values = np.unique(np.asarray(confidences, dtype=np.float64))
    if values.size == 0:
        return np.array([0.0])
    middle = (values[:-1] + values[1:]) / 2
    return np.concatenate([[min(0.0, values[0])], middle, [np.nextafter(values[-1], np.inf)]])


def cut_run(run: Run, threshold: float, confidence: Mapping[str, float] | None = None) -> dict[str, dict[str, float]]:
    """Apply a threshold: with ``confidence`` (per-query) drop whole queries below it, else drop documents below it."""
    if confidence is not None:
        return {q: (dict(docs) if confidence.get(q, -np.inf) >= threshold else {}) for q, docs in run.items()}
    return {q: {d: s for d, s in docs.items() if s >= threshold} for q, docs in run.items()}


def _top(run: Run) -> dict[str, float]:
    return {q: (max(docs.values()) if docs else -np.inf) for q, docs in run.items()}


def threshold_curve(
    run: Run,
    answerable: Mapping[str, bool],
    thresholds: Sequence[float] | np.ndarray,
    *,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    metric: str | None = None,
    confidence: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """False-evidence rate, hit rate (and optionally a ranking metric) at each threshold.

    ``run`` holds calibrated probabilities. A query is *answered* at threshold ``t`` when its
    confidence (default: its best probability) is at least ``t``.
    """
    document_cut = confidence is None  # thresholding the best score is the same as cutting documents
    confidence = dict(confidence) if confidence is not None else _top(run)
    queries = [q for q in answerable if q in confidence]
    fer, hits, values = [], [], []
    for t in thresholds:
        answered = {q: confidence[q] >= t for q in queries}
        labels = {q: answerable[q] for q in queries}
        fer.append(false_evidence_rate(answered, labels))
        hits.append(hit_rate(answered, labels))
        if metric is not None:
            if qrels is None:
                raise InvalidInputError(f"objective {metric!r} needs qrels")
            if document_cut:
                cut = {q: {d: s for d, s in docs.items() if s >= t} for q, docs in run.items()}
            else:
                cut = {q: (dict(docs) if answered.get(q) else {}) for q, docs in run.items()}
            values.append(ranking_metrics(qrels, cut, [metric])[metric.lower()])
    curve = {"threshold": np.asarray(thresholds, dtype=np.float64), "false_evidence_rate": np.array(fer), "hit_rate": np.array(hits)}
    if metric is not None:
        curve[metric.lower()] = np.array(values)
    return curve


def select_threshold(
    run: Run,
    answerable: Mapping[str, bool],
    *,
    max_false_evidence: float = 0.3,
    objective: str = "hit_rate",
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    confidence: Mapping[str, float] | None = None,
    thresholds: Sequence[float] | np.ndarray | None = None,
    clip: bool = True,
) -> ThresholdChoice:
    """Maximise ``objective`` subject to false-evidence rate ``<= max_false_evidence``.

    Args:
        run: ``{query_id: {doc_id: calibrated probability}}`` on a development set.
        answerable: Per query, whether the corpus holds an answer.
        max_false_evidence: The constraint ε.
        objective: ``hit_rate`` or a ranking metric such as ``ndcg@10`` or ``recall@10``
            (computed with ``qrels`` on the thresholded run; abstained queries score 0).
        qrels: Judgements for ranking objectives.
        confidence: Per-query confidence to threshold (default: the best probability).
        thresholds: Thresholds to consider (default: every point where a decision changes).
        clip: Clip the chosen threshold to [0, 1], as probabilities need; pass False when
            ``confidence`` holds raw scores.

    Ties on the objective go to the lower false-evidence rate, then to the lower threshold.

    Example:
        >>> run = {"a": {"d": 0.9}, "b": {"d": 0.4}, "c": {"d": 0.6}}
        >>> select_threshold(run, {"a": True, "b": False, "c": True}, max_false_evidence=0.0).threshold
        0.5
    """
    if not 0.0 <= max_false_evidence <= 1.0:
        raise InvalidInputError(f"max_false_evidence must be in [0, 1]; received {max_false_evidence}")
    conf = dict(confidence) if confidence is not None else _top(run)
    if thresholds is None:
        thresholds = candidate_thresholds([v for q, v in conf.items() if q in answerable and np.isfinite(v)])
    metric = None if objective == "hit_rate" else objective
    curve = threshold_curve(run, answerable, thresholds, qrels=qrels, metric=metric, confidence=confidence)
    fer = np.nan_to_num(curve["false_evidence_rate"], nan=0.0)
    hits = np.nan_to_num(curve["hit_rate"], nan=0.0)
    values = hits if metric is None else curve[metric.lower()]
    feasible = fer <= max_false_evidence + 1e-12
    if feasible.any():
        candidates = np.flatnonzero(feasible)
        best = max(candidates, key=lambda i: (values[i], -fer[i], -curve["threshold"][i]))
    else:
        best = min(range(len(fer)), key=lambda i: (fer[i], -values[i], curve["threshold"][i]))
    return ThresholdChoice(
        threshold=float(np.clip(curve["threshold"][best], 0.0, 1.0)) if clip else float(curve["threshold"][best]),
        objective=objective,
        objective_value=float(values[best]),
        false_evidence_rate=float(curve["false_evidence_rate"][best]),
        hit_rate=float(curve["hit_rate"][best]),
        max_false_evidence=max_false_evidence,
        feasible=bool(feasible.any()),
    )


def precision_threshold(
    probabilities: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray, target_precision: float
) -> float | None:
    """The lowest threshold whose kept pairs reach ``target_precision`` (``None`` if none does).

    Example:
        >>> precision_threshold([0.9, 0.8, 0.7, 0.6], [1, 1, 0, 1], 0.75)
        0.6
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.shape != y.shape:
        raise InvalidInputError(f"need one label per probability; received {p.size} and {y.size}")
    if not 0.0 < target_precision <= 1.0:
        raise InvalidInputError(f"target precision must be in (0, 1]; received {target_precision}")
    order = np.argsort(-p, kind="stable")
    p, y = p[order], y[order]
    distinct = np.flatnonzero(np.r_[p[1:] != p[:-1], True])  # last index of each run of equal scores
    precision = np.cumsum(y)[distinct] / (distinct + 1)
    ok = np.flatnonzero(precision >= target_precision - 1e-12)
    return float(p[distinct[ok[-1]]]) if ok.size else None


def relative_cutoff(scores: Sequence[float], share: float) -> int:
    """How many of the best-first ``scores`` to keep: those at least ``share`` times the top score."""
    if not 0.0 <= share <= 1.0:
        raise InvalidInputError(f"share of the top score must be in [0, 1]; received {share}")
    if len(scores) == 0:
        return 0
    floor = share * float(scores[0])
    return int(sum(1 for s in scores if float(s) >= floor))


def gap_cutoff(scores: Sequence[float], max_gap: float) -> int:
    """How many of the best-first ``scores`` to keep: stop before the first drop larger than ``max_gap``."""
    if max_gap < 0:
        raise InvalidInputError(f"score gap must be >= 0; received {max_gap}")
    for index in range(1, len(scores)):
        if float(scores[index - 1]) - float(scores[index]) > max_gap:
            return index
    return len(scores)


