"""Fitting a calibration from labelled queries, whatever they come from.

Three sources give labelled queries (:mod:`crossrank.evaluation.labelled`): a BEIR folder's
judgements, a pairs file and the feedback log that :mod:`crossrank.feedback` records. All become
one :class:`LabelledQueries` (each query's raw scores and 0/1 labels), and :func:`fit_labelled`
fits the calibrator, the probability threshold and the abstention rule on it:

* the calibrator kind is chosen by expected calibration error (ECE) on a held-out share of the
  queries (queries of one *group*, e.g. repeated impressions of one query, are held out
  together), then refitted on all of them;
* the held-out ECE of the chosen kind is reported with a bootstrap interval over the held-out
  queries;
* the abstention rule is chosen by hit rate under the false-evidence constraint on the held-out
  queries, when the data has both answerable and no-answer queries; otherwise none is fitted,
  and the report says why.

:func:`check_enough` is the rule that refuses too little data: at least :data:`MIN_QUERIES` (25)
labelled queries holding at least :data:`MIN_POSITIVES` (15) relevant and :data:`MIN_NEGATIVES` (15)
non-relevant pairs. It comes from ``crossrank bench calibration`` (section ``calibration-labels``
of ``BENCHMARKS.md``: 20 random draws per size, Platt on each query's top 10, ECE on the rest of
the domain): on Cranfield, 10 labelled queries left a median held-out ECE of 0.061 and only 7 of
20 draws within 0.05, 25 queries a median of 0.033 with 16 of 20 within; on SciFact, draws of 25
claims held a median of 17 relevant pairs and all 20 reached 0.05. Fewer relevant pairs than
that leave Platt's slope to chance.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crossrank.abstention import answer_probability, fit_logistic_rule
from crossrank.calibration import FITTABLE_KINDS, Calibration, Calibrator, fit_calibrator
from crossrank.errors import InvalidInputError
from crossrank.evaluation.metrics import expected_calibration_error, false_evidence_rate, hit_rate
from crossrank.evaluation.thresholds import candidate_thresholds, select_threshold

__all__ = [
    "MIN_NEGATIVES",
    "MIN_POSITIVES",
    "MIN_QUERIES",
    "LabelledQueries",
    "bootstrap_ece",
    "check_enough",
    "drift_reference",
    "fit_labelled",
    "prefer_simpler_rule",
    "shortfall",
]

MIN_QUERIES = 25
"""Labelled queries a calibration must be fitted on (``crossrank calibrate`` refuses fewer)."""
MIN_POSITIVES = 15
"""Relevant pairs it must hold."""
MIN_NEGATIVES = 15
"""Non-relevant pairs it must hold."""

DATA_RULE = (
    f"at least {MIN_QUERIES} labelled queries holding at least {MIN_POSITIVES} relevant and "
    f"{MIN_NEGATIVES} non-relevant pairs"
)


@dataclass
class LabelledQueries:
    """Raw scores and labels of labelled queries.

    Attributes:
        logits: ``{query: {doc: raw score}}``; a query with no scored document is ignored.
        labels: ``{query: {doc: 1 or 0}}``; a scored document without a label counts as 0.
        answerable: Per query, whether it has an answer (abstention rules need both kinds);
            None when unknown.
        judgments: Graded judgements for ranking objectives (default: ``labels``).
        groups: Per query, a group key: queries of one group are held out together (default:
            each query is its own group).
        source: What the labels are, for reports (e.g. ``"qrels/test.tsv"``).
    """

    logits: dict[str, dict[str, float]]
    labels: dict[str, dict[str, float]]
    answerable: dict[str, bool] | None = None
    judgments: dict[str, dict[str, float]] | None = None
    groups: dict[str, str] | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def query_ids(self) -> list[str]:
        """Queries with at least one scored document, in their given order."""
        return [q for q, docs in self.logits.items() if docs]

    def pairs(self, queries: Iterable[str] | None = None, *, top: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw scores and 0/1 labels, each query's documents best first (``top``: only its best ``top``)."""
        xs: list[float] = []
        ys: list[float] = []
        for q in self.query_ids() if queries is None else queries:
            docs = self.logits.get(q, {})
            ids = sorted(docs, key=lambda d: (-docs[d], d))
            if top is not None:
                ids = ids[:top]
            judged = self.labels.get(q, {})
            for d in ids:
                xs.append(docs[d])
                ys.append(1.0 if judged.get(d, 0) > 0 else 0.0)
        return np.array(xs, dtype=np.float64), np.array(ys, dtype=np.float64)

    def subset(self, queries: Sequence[str]) -> LabelledQueries:
        keep = list(queries)
        return LabelledQueries(
            logits={q: self.logits.get(q, {}) for q in keep},
            labels={q: self.labels.get(q, {}) for q in keep},
            answerable=None if self.answerable is None else {q: self.answerable[q] for q in keep if q in self.answerable},
            judgments=None if self.judgments is None else {q: self.judgments[q] for q in keep if q in self.judgments},
            groups=None if self.groups is None else {q: self.groups.get(q, q) for q in keep},
            source=self.source,
            extra=dict(self.extra),
        )

    def counts(self, top: int | None = None) -> dict[str, int]:
        """Labelled queries, pairs, relevant and non-relevant pairs (of each query's best ``top``), and no-answer queries."""
        _, y = self.pairs(top=top)
        queries = self.query_ids()
        no_answer = sum(1 for q in queries if self.answerable is not None and self.answerable.get(q) is False)
        return {"queries": len(queries), "pairs": int(y.size), "positives": int(y.sum()),
                "negatives": int(y.size - y.sum()), "no_answer_queries": no_answer}


def shortfall(counts: Mapping[str, int]) -> list[str]:
    """What ``counts`` lacks under the data rule, one phrase per missing quantity (empty: enough)."""
    missing = []
    if counts["queries"] < MIN_QUERIES:
        missing.append(f"{counts['queries']} labelled queries (need {MIN_QUERIES}: {MIN_QUERIES - counts['queries']} more)")
    if counts["positives"] < MIN_POSITIVES:
        missing.append(f"{counts['positives']} relevant pairs (need {MIN_POSITIVES}: {MIN_POSITIVES - counts['positives']} more)")
    if counts["negatives"] < MIN_NEGATIVES:
        missing.append(f"{counts['negatives']} non-relevant pairs (need {MIN_NEGATIVES}: {MIN_NEGATIVES - counts['negatives']} more)")
    return missing


def check_enough(data: LabelledQueries, where: str = "", *, top: int | None = None) -> dict[str, int]:
    """Refuse data too small to fit a calibration on; returns the counts when it is enough.

    ``top``: count only each query's best ``top`` documents (those a fit with ``top`` uses).

    Raises:
        InvalidInputError: saying what is missing and how much more is needed.
    """
    counts = data.counts(top)
    missing = shortfall(counts)
    if missing:
        source = f" in {where}" if where else ""
        raise InvalidInputError(
            f"not enough labelled data to fit a calibration{source}: {'; '.join(missing)}. A calibration needs "
            f"{DATA_RULE}: with fewer, its held-out calibration error varies too much from one sample of queries "
            "to the next (BENCHMARKS.md, section calibration-labels); nothing was written"
        )
    return counts


def drift_reference(data: LabelledQueries) -> dict[str, Any] | None:
    """The distribution of the queries' top raw scores (:func:`crossrank.drift.reference_distribution`),
    or None with fewer than 10 queries."""
    from crossrank.drift import reference_distribution

    tops = [max(data.logits[q].values()) for q in data.query_ids()]
    if len(tops) < 10:
        return None
    return reference_distribution(tops)


def bootstrap_ece(
    per_query: Sequence[tuple[np.ndarray, np.ndarray]], *, bins: int = 15, samples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """A percentile bootstrap interval of the ECE, resampling whole queries.

    Args:
        per_query: Per query, its ``(probabilities, labels)``.
    """
    usable = [(np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)) for p, y in per_query if len(p)]
    if not usable:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(samples):
        chosen = rng.integers(0, len(usable), size=len(usable))
        p = np.concatenate([usable[i][0] for i in chosen])
        y = np.concatenate([usable[i][1] for i in chosen])
        values.append(expected_calibration_error(p, y, bins))
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _held_out_split(data: LabelledQueries, queries: Sequence[str], holdout: float, seed: int) -> set[str]:
    rng = random.Random(seed)
    if data.groups is None:
        return set(rng.sample(list(queries), max(1, round(holdout * len(queries)))))
    ordered: list[str] = []
    for q in queries:
        group = data.groups.get(q, q)
        if group not in ordered:
            ordered.append(group)
    held_groups = set(rng.sample(ordered, max(1, round(holdout * len(ordered)))))
    return {q for q in queries if data.groups.get(q, q) in held_groups}


def fit_labelled(
    data: LabelledQueries,
    *,
    kinds: Sequence[str] = ("platt", "isotonic"),
    holdout: float = 0.3,
    seed: int = 0,
    max_false_evidence: float = 0.3,
    objective: str = "hit_rate",
    abstention_rules: Sequence[str] = ("max-score", "logistic"),
    bins: int = 15,
    min_block: int = 10,
    report_top: int | None = None,
    bootstrap_samples: int = 0,
    top: int | None = None,
) -> tuple[Calibration, dict[str, Any]]:
    """Fit a calibrator, a probability threshold and an abstention rule on labelled queries.

    The calibrator kind is chosen by ECE on a held-out share of the queries (then refitted on all
    of them); the abstention rule by hit rate under the false-evidence constraint on the held-out
    share; the final threshold is selected on all queries with that constraint.

    Args:
        data: The labelled queries.
        kinds: Calibrator kinds to compare.
        holdout: Share of the queries (of the groups, when given) held out to choose.
        seed: Seed of the held-out draw.
        max_false_evidence: The abstention rule's constraint.
        objective: ``hit_rate`` or a ranking metric for the threshold.
        abstention_rules: Abstention rule kinds to compare.
        bins: ECE bins.
        min_block: Smallest block of an isotonic calibrator.
        report_top: Also report the chosen kind's held-out ECE over each held-out query's best
            ``report_top`` documents only.
        bootstrap_samples: Add a bootstrap interval of the held-out ECE (0: none).
        top: Fit and measure the calibrator on each query's best ``top`` documents only (the ones
            a reranker hands on), not on all its scored documents (default: all). Fitted on the
            population it is measured on, a calibrator needs fewer queries: on Cranfield, Platt
            fitted on 25 queries' top 10 reaches a held-out ECE of 0.033 against 0.062 fitted on
            their top 30 (``crossrank bench calibration``).

    Returns:
        The calibration and a report of the choices (``held_out`` holds the chosen calibrator's
        held-out ECE; ``abstention_note`` says why no rule was fitted, when none was).
    """
    unknown = [k for k in kinds if k not in FITTABLE_KINDS]
    if unknown or not kinds:
        raise InvalidInputError(f"calibrator kinds must come from {FITTABLE_KINDS}; received {list(kinds)}")
    queries = data.query_ids()
    if len(queries) < 2:
        raise InvalidInputError(f"need at least 2 labelled queries to fit a calibration; received {len(queries)}")
    held = _held_out_split(data, queries, holdout, seed)
    fit_queries = [q for q in queries if q not in held]
    held_queries = [q for q in queries if q in held]
    if not fit_queries:
        raise InvalidInputError(f"holdout {holdout} leaves no query to fit on ({len(queries)} queries)")
    x_fit, y_fit = data.pairs(fit_queries, top=top)
    x_held, y_held = data.pairs(held_queries, top=top)
    options = {"isotonic": {"min_block": min_block}}
    comparison: dict[str, Any] = {}
    held_calibrators: dict[str, Calibrator] = {}
    for kind in kinds:
        calibrator = fit_calibrator(kind, x_fit, y_fit, **options.get(kind, {}))
        held_calibrators[kind] = calibrator
        p = calibrator.transform(x_held)
        comparison[kind] = {"held_out_ece": expected_calibration_error(p, y_held, bins), "held_out_log_loss": _log_loss(p, y_held)}
    chosen = min(kinds, key=lambda k: comparison[k]["held_out_ece"])
    x_all, y_all = data.pairs(queries, top=top)
    calibrator = fit_calibrator(chosen, x_all, y_all, **options.get(chosen, {}))
    report: dict[str, Any] = {"labels": data.source, "calibrator_comparison": comparison, "chosen_calibrator": chosen,
                              "fit_pairs": len(x_all), "fit_positive_rate": float(y_all.mean()), "held_out_queries": len(held_queries)}
    held_calibrator = held_calibrators[chosen]
    summary: dict[str, Any] = {
        "calibrator": chosen, "fitted_on_queries": len(fit_queries), "queries": len(held_queries),
        "pairs": int(y_held.size), "ece": comparison[chosen]["held_out_ece"], "bins": bins, "fit_top": top,
    }
    if bootstrap_samples:
        per_query = [(held_calibrator.transform(x), y) for x, y in (data.pairs([q], top=top) for q in held_queries)]
        summary["ece_interval"] = list(bootstrap_ece(per_query, bins=bins, samples=bootstrap_samples, seed=seed))
    if report_top is not None:
        x_top, y_top = data.pairs(held_queries, top=report_top)
        summary["top"] = report_top
        summary["ece_top"] = expected_calibration_error(held_calibrator.transform(x_top), y_top, bins)
        if bootstrap_samples:
            per_query = [(held_calibrator.transform(x), y) for x, y in (data.pairs([q], top=report_top) for q in held_queries)]
            summary["ece_top_interval"] = list(bootstrap_ece(per_query, bins=bins, samples=bootstrap_samples, seed=seed))
    report["held_out"] = summary
    if data.answerable is None:
        report["abstention_note"] = (
            "no abstention rule fitted: the data marks no query as having no answer, and no abstention rule "
            "can be fitted without no-answer queries"
        )
        return Calibration(calibrator=calibrator), report
    answerable = {q: data.answerable[q] for q in queries if q in data.answerable}
    kinds_present = set(answerable.values())
    if kinds_present != {True, False}:
        if False not in kinds_present:
            note = (f"all {len(answerable)} labelled queries are answerable, and no abstention rule can be fitted "
                    "without no-answer queries")
        else:
            note = f"all {len(answerable)} labelled queries have no answer; an abstention rule needs answerable queries too"
        report["abstention_note"] = f"no abstention rule fitted: {note}"
        return Calibration(calibrator=calibrator), report
    fit_part, held_part = data.subset(fit_queries), data.subset(held_queries)
    # Choose the abstention rule on the held-out queries, with the calibrator fitted without them.
    rule_scores: dict[str, Any] = {}
    for rule_kind in abstention_rules:
        rule, cut = _fit_rule(rule_kind, fit_part, held_calibrator, answerable, max_false_evidence, objective)
        if rule is None:
            continue
        held_conf = _rule_confidence(rule, held_part, held_calibrator)
        held_answerable = {q: answerable[q] for q in held_queries if q in answerable}
        answered = {q: held_conf[q] >= cut for q in held_answerable}
        rule_scores[rule_kind] = {
            "held_out_false_evidence_rate": false_evidence_rate(answered, held_answerable),
            "held_out_hit_rate": hit_rate(answered, held_answerable),
            "held_out_answerable": sum(held_answerable.values()),
        }
    if not rule_scores:
        report["abstention_note"] = (
            "no abstention rule fitted: the queries left to fit it on (outside the held-out share) are all answerable "
            "or all without an answer; label more no-answer queries"
        )
        return Calibration(calibrator=calibrator), report
    best_rule = prefer_simpler_rule(rule_scores, list(abstention_rules), max_false_evidence)
    rule, cut = _fit_rule(best_rule, data, calibrator, answerable, max_false_evidence, objective)
    assert rule is not None
    if rule["kind"] == "max-score":
        threshold = cut
        rule = {"kind": "max-score", "min_top_score": cut}
    else:
        rule = {**rule, "min_probability": cut}
        # Documents are still cut by probability; the rule decides whether the query is answered.
        threshold = 0.0
    report.update(abstention_comparison=rule_scores, chosen_abstention=best_rule, max_false_evidence=max_false_evidence, objective=objective)
    return Calibration(calibrator=calibrator, threshold=float(threshold), abstention=rule), report


def prefer_simpler_rule(rule_scores: Mapping[str, Mapping[str, float]], order: Sequence[str], max_false_evidence: float) -> str:
    """The rule to ship: the first listed (simplest) one that meets the constraint on held-out
    queries, replaced by a later one only if that one's held-out hit rate is higher by more than
    one standard error, so a richer rule is kept only when it measurably helps."""
    ranked = [k for k in order if k in rule_scores]
    feasible = [k for k in ranked if rule_scores[k]["held_out_false_evidence_rate"] <= max_false_evidence + 1e-12]
    if not feasible:
        return min(ranked, key=lambda k: (rule_scores[k]["held_out_false_evidence_rate"], ranked.index(k)))
    best = feasible[0]
    for kind in feasible[1:]:
        hits, base = rule_scores[kind]["held_out_hit_rate"], rule_scores[best]["held_out_hit_rate"]
        n = max(1.0, float(rule_scores[best].get("held_out_answerable", 1)))
        if hits - base > np.sqrt(max(base * (1 - base), 1e-12) / n):
            best = kind
    return best


def _ranked(logits: Mapping[str, float], calibrator: Calibrator) -> tuple[np.ndarray, np.ndarray]:
    raw = np.sort(np.array(list(logits.values()), dtype=np.float64))[::-1]
    return calibrator.transform(raw), raw


def _rule_confidence(rule: Mapping[str, Any], data: LabelledQueries, calibrator: Calibrator) -> dict[str, float]:
    out: dict[str, float] = {}
    for q in data.logits:
        if not data.logits.get(q):
            out[q] = -np.inf
            continue
        p, z = _ranked(data.logits[q], calibrator)
        out[q] = float(p[0]) if rule["kind"] == "max-score" else answer_probability(rule, p, z)
    return out


def _fit_rule(kind: str, data: LabelledQueries, calibrator: Calibrator, answerable: Mapping[str, bool],
              max_false_evidence: float, objective: str) -> tuple[dict[str, Any] | None, float]:
    queries = [q for q in data.logits if q in answerable and data.logits.get(q)]
    labels = {q: answerable[q] for q in queries}
    if len(set(labels.values())) < 2:
        return None, 0.0
    if kind == "max-score":
        rule: dict[str, Any] = {"kind": "max-score", "min_top_score": 0.0}
    elif kind == "logistic":
        ranked = [_ranked(data.logits[q], calibrator) for q in queries]
        rule = fit_logistic_rule(ranked, [labels[q] for q in queries])
    else:
        raise InvalidInputError(f"unknown abstention rule kind {kind!r}; expected 'max-score' or 'logistic'")
    part = data.subset(queries)
    confidence = _rule_confidence(rule, part, calibrator)
    probabilities: dict[str, dict[str, float]] = {}
    for q, docs in part.logits.items():
        ids = list(docs)
        values = calibrator.transform(np.array([docs[d] for d in ids])) if ids else np.zeros(0)
        probabilities[q] = {d: float(np.clip(v, 0.0, 1.0)) for d, v in zip(ids, values)}
    judgments = part.judgments if part.judgments is not None else part.labels
    choice = select_threshold(probabilities, labels, max_false_evidence=max_false_evidence, objective=objective,
                              qrels=judgments if objective != "hit_rate" else None,
                              confidence=confidence, thresholds=candidate_thresholds(list(confidence.values())))
    return rule, choice.threshold


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
