"""End-to-end evaluation and fitting over a BEIR-layout dataset, built on the score cache."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.calibration import FITTABLE_KINDS, Calibration, Calibrator
from crossrank.errors import InvalidInputError
from crossrank.fusion import AUTO, AUTO_WEIGHT, fuse_scores, validate_first_stage_weight
from crossrank.evaluation.cache import EvalScoreCache, default_cache_dir, scorer_settings
from crossrank.evaluation.candidates import candidate_recall, get_scored_candidates
from crossrank.evaluation.datasets import BeirDataset, Qrels, load_dataset
from crossrank.evaluation.fitting import LabelledQueries, fit_labelled, prefer_simpler_rule
from crossrank.evaluation.metrics import (
    expected_calibration_error,
    false_evidence_rate,
    hit_rate,
    per_query_metric,
    ranking_metrics,
    separation_auc,
)
from crossrank.evaluation.scoring import Scores, cached_scores, score_candidates
from crossrank.evaluation.significance import paired_bootstrap, randomization_test
from crossrank.evaluation.thresholds import select_threshold, threshold_curve

__all__ = [
    "DEFAULT_METRICS",
    "EvalSetup",
    "ScoredSplit",
    "compare_reports",
    "decide",
    "evaluate_scores",
    "fit_calibration",
    "labelled_pairs",
    "labelled_queries",
    "prefer_simpler_rule",
    "prepare",
    "select_first_stage_weight",
]

DEFAULT_METRICS = ("ndcg@10", "mrr@10", "map", "recall@10", "recall@100", "precision@10", "hit@1", "hit@10")


@dataclass
class EvalSetup:
    """Where candidates come from and how queries are chosen.

    Attributes:
        split: Split name (``qrels/<split>.tsv`` and friends).
        candidates: ``bm25``, ``dense``, ``rrf`` or ``fixed``.
        depth: Candidates per query.
        rrf_k0: The RRF constant when ``candidates="rrf"``.
        bm25_stemmer: BM25's stemmer (``english``, ``porter`` or ``none``) for ``bm25``/``rrf``.
        query_ids: Use only these queries of the split (e.g. a training run's held-out dev
            queries), if set; an id the split does not have is an error.
        sample: Use only this many queries of the split (a seeded random sample), if set;
            drawn from ``query_ids`` when both are set.
        seed: Seed for ``sample``.
        include_judged: Add the split's judged-relevant documents missing from the candidates
            (for fitting data, so positives are represented; never for reported figures).
        rerank_depth: Rerank only each list's first this many candidates and keep the rest in
            first-stage order below them (default: rerank all ``depth``).
        first_stage_weight: Order the reranked candidates by ``(1 - w) * z(logit) + w *
            z(first-stage score)`` (see :mod:`crossrank.fusion`); 0 (default) ranks by the
            reranker alone, ``"auto"`` fuses with :data:`crossrank.fusion.AUTO_WEIGHT` when the
            candidates carry retriever scores (not the dataset's fixed lists), as the engine's
            default does. Probabilities, thresholds and abstention are unaffected.
    """

    split: str = "test"
    candidates: str = "bm25"
    depth: int = 100
    rrf_k0: int = 60
    bm25_stemmer: str = "english"
    query_ids: list[str] | None = None
    sample: int | None = None
    seed: int = 0
    include_judged: bool = False
    rerank_depth: int | None = None
    first_stage_weight: float | str = 0.0

    def __post_init__(self) -> None:
        self.first_stage_weight = validate_first_stage_weight(self.first_stage_weight, allow_auto=True)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ScoredSplit:
    """A split's candidates and their raw scores (``{query: {doc: logit}}``), best candidate first.

    ``first_stage`` holds the retriever's score of each candidate (``{query: {doc: score}}``).
    """

    dataset: BeirDataset
    setup: EvalSetup
    query_ids: list[str]
    candidates: dict[str, list[str]]
    logits: Scores
    settings: dict[str, Any]
    complete: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    first_stage: Scores = field(default_factory=dict)

    @property
    def has_retriever_scores(self) -> bool:
        """Whether the candidates carry the retriever's own scores (the dataset's fixed lists carry only their rank)."""
        return self.setup.candidates != "fixed" and bool(self.first_stage)

    def applied_weight(self, first_stage_weight: float | str | None = None) -> float:
        """The weight a ranking fuses with: ``"auto"`` is :data:`~crossrank.fusion.AUTO_WEIGHT` when the
        candidates carry retriever scores and 0 otherwise (default: the setup's weight)."""
        weight = self.setup.first_stage_weight if first_stage_weight is None else validate_first_stage_weight(first_stage_weight, allow_auto=True)
        if weight == AUTO:
            return AUTO_WEIGHT if self.has_retriever_scores else 0.0
        return float(weight)

    def ranking(self, first_stage_weight: float | str | None = None) -> dict[str, dict[str, float]]:
        """Final ranking scores: reranked candidates first, then the unscored rest in first-stage order.

        The reranked candidates are ordered by their logits, or with ``first_stage_weight``
        (default: the setup's; ``"auto"`` as in :meth:`applied_weight`) by their logits fused with
        the first-stage scores.
        """
        weight = self.applied_weight(first_stage_weight)
        out: dict[str, dict[str, float]] = {}
        for q, docs in self.candidates.items():
            scored = self.logits.get(q, {})
            if weight > 0.0 and scored:
                retrieved = self.first_stage.get(q, {})
                missing = [d for d in scored if d not in retrieved]
                if missing:
                    raise InvalidInputError(
                        f"query {q!r}: fusing needs a first-stage score for every reranked candidate; "
                        f"{len(missing)} have none (e.g. {missing[0]!r})"
                    )
                ids = list(scored)
                fused = fuse_scores([scored[d] for d in ids], [retrieved[d] for d in ids], first_stage_weight=weight)
                scored = {d: float(v) for d, v in zip(ids, fused)}
            floor = min(scored.values(), default=0.0) - 1.0
            rest = [d for d in docs if d not in scored]
            out[q] = {**scored, **{d: floor - (i + 1) for i, d in enumerate(rest)}}
        return out

    def judgments(self) -> Qrels:
        """The split's judgments for this run's queries only.

        Metrics count a judged query without candidates as 0, so judgments of queries outside a
        ``sample`` or ``query_ids`` subset must not reach them.
        """
        return _for_queries(self.dataset.qrels(self.setup.split), self.query_ids)

    def probabilities(self, calibrator: Calibrator) -> Scores:
        out: Scores = {}
        for q, docs in self.logits.items():
            ids = list(docs)
            values = calibrator.transform(np.array([docs[d] for d in ids])) if ids else np.zeros(0)
            out[q] = {d: float(np.clip(v, 0.0, 1.0)) for d, v in zip(ids, values)}
        return out


def _for_queries(qrels: Qrels, query_ids: Sequence[str]) -> Qrels:
    """The judgments of ``query_ids`` only (metrics count every judged query they are given)."""
    return {q: qrels[q] for q in query_ids if q in qrels}


def prepare(
    dataset: str | Path | BeirDataset,
    setup: EvalSetup,
    reranker: Any,
    *,
    cache_dir: str | Path | None = None,
    score: bool = True,
    progress: bool = False,
) -> ScoredSplit:
    """Load the data, retrieve candidates and score them (only what the cache lacks).

    With ``score=False`` nothing is computed: pairs missing from the cache are left out and
    ``complete`` says whether any were missing.
    """
    data = dataset if isinstance(dataset, BeirDataset) else load_dataset(dataset)
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    query_ids = data.split_queries(setup.split)
    if setup.query_ids is not None:
        wanted = set(setup.query_ids)
        unknown = sorted(wanted - set(query_ids))
        if unknown:
            raise InvalidInputError(
                f"{len(unknown)} of the {len(wanted)} requested query ids are not queries of split {setup.split!r} "
                f"(e.g. {unknown[:5]}); expected ids from its qrels"
            )
        query_ids = [q for q in query_ids if q in wanted]
    if setup.sample is not None:
        if setup.sample < 1:
            raise InvalidInputError(f"sample must be >= 1; received {setup.sample}")
        rng = random.Random(setup.seed)
        chosen = set(rng.sample(query_ids, min(setup.sample, len(query_ids))))
        query_ids = [q for q in query_ids if q in chosen]
    candidates, retrieved = get_scored_candidates(
        data, setup.split, setup.candidates, setup.depth, cache_dir=cache_root, rrf_k0=setup.rrf_k0, query_ids=query_ids,
        bm25_stemmer=setup.bm25_stemmer,
    )
    first_stage = {q: dict(zip(docs, retrieved.get(q, []))) for q, docs in candidates.items()}
    judged_added: dict[str, list[str]] = {}
    if setup.include_judged and data.has_qrels(setup.split):
        judged = data.qrels(setup.split)
        added = {
            q: [d for d, g in judged.get(q, {}).items() if g > 0 and d not in docs and d in data.corpus]
            for q, docs in candidates.items()
        }
        candidates = {q: docs + added[q] for q, docs in candidates.items()}
        judged_added = {q: extra for q, extra in added.items() if extra}
        for q, extra in added.items():
            # Retrieved below the depth, so they scored no higher than the last candidate.
            floor = min(first_stage[q].values(), default=0.0)
            first_stage[q].update({d: floor for d in extra})
    if setup.rerank_depth is not None and setup.rerank_depth < 1:
        raise InvalidInputError(f"rerank depth must be >= 1; received {setup.rerank_depth}")
    to_score = {q: docs[: setup.rerank_depth] for q, docs in candidates.items()} if setup.rerank_depth else candidates
    settings = scorer_settings(reranker)
    cache = EvalScoreCache(cache_root, settings)
    try:
        if score:
            logits = score_candidates(reranker, data, to_score, cache, progress=progress)
        else:
            logits = cached_scores(data, to_score, cache)
    finally:
        cache.close()
    complete = all(len(logits[q]) == len(to_score[q]) for q in to_score)
    return ScoredSplit(data, setup, query_ids, candidates, logits, settings, complete,
                       extra={"judged_added": judged_added}, first_stage=first_stage)


def decide(calibration: Calibration, threshold: float | str | None, logits: Mapping[str, float]) -> dict[str, float]:
    """The documents a :class:`~crossrank.Reranker` returns for one query, by the engine's own
    decision (:func:`crossrank.engine.decision.decide`).

    Returns ``{doc_id: probability}`` of the kept documents, best first; empty when it abstains.
    """
    from crossrank.engine.decision import Policy
    from crossrank.engine.decision import decide as engine_decide

    ids = list(logits)
    raw = np.array([logits[d] for d in ids], dtype=np.float64)
    decision = engine_decide(raw, calibration, Policy(threshold=threshold))
    return {ids[i]: float(decision.probabilities[i]) for i in decision.kept}


def labelled_pairs(scored: ScoredSplit, labels: Qrels, *, top: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logits and 0/1 labels of scored pairs (unjudged = 0); with ``top``, only each query's best ``top``."""
    xs: list[float] = []
    ys: list[float] = []
    for q in scored.query_ids:
        docs = scored.logits.get(q, {})
        ids = sorted(docs, key=lambda d: (-docs[d], d))
        if top is not None:
            ids = ids[:top]
        judged = labels.get(q, {})
        for d in ids:
            xs.append(docs[d])
            ys.append(1.0 if judged.get(d, 0) > 0 else 0.0)
    return np.array(xs), np.array(ys)


def _calibration_labels(data: BeirDataset, split: str) -> tuple[Qrels | None, str | None]:
    if data.has_qrels(f"{split}-evidence"):
        return data.qrels(f"{split}-evidence"), f"qrels/{split}-evidence.tsv"
    if data.has_qrels(split):
        return data.qrels(split), f"qrels/{split}.tsv"
    return None, None


def evaluate_scores(
    scored: ScoredSplit,
    calibration: Calibration,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    threshold: float | str | None = "calibrated",
    max_false_evidence: float = 0.3,
    ece_top: int = 10,
    bins: int = 15,
    significance_samples: int = 10_000,
) -> dict[str, Any]:
    """Everything the ``eval`` report holds, computed from cached scores (no model calls)."""
    data, split = scored.dataset, scored.setup.split
    report: dict[str, Any] = {
        "dataset": str(data.path),
        "split": split,
        "setup": scored.setup.to_dict(),
        "first_stage_weight_applied": scored.applied_weight(),
        "scorer": scored.settings,
        "queries": len(scored.query_ids),
        "pairs_scored": sum(len(v) for v in scored.logits.values()),
        "pairs_expected": sum(len(v[: scored.setup.rerank_depth or None]) for v in scored.candidates.values()),
        "complete": scored.complete,
        "calibration": {"calibrator": calibration.calibrator.to_dict(), "threshold": calibration.threshold,
                        "abstention": calibration.abstention, "provenance": calibration.provenance},
    }
    probabilities = scored.probabilities(calibration.calibrator)
    first_stage_order = {q: {d: float(len(docs) - r) for r, d in enumerate(docs)} for q, docs in scored.candidates.items()}
    if data.has_qrels(split):
        qrels = scored.judgments()
        # Ranking uses the raw logits: a monotone calibrator must not change the order, and
        # isotonic plateaus would otherwise create ties.
        final = scored.ranking()
        report["metrics"] = ranking_metrics(qrels, final, metrics)
        report["first_stage_metrics"] = ranking_metrics(qrels, first_stage_order, metrics)
        report["orders"] = _both_orders(scored, qrels, metrics, significance_samples)
        report["candidate_recall"] = candidate_recall(scored.candidates, qrels)
        headline = metrics[0]
        a = per_query_metric(qrels, first_stage_order, headline)
        b = per_query_metric(qrels, final, headline)
        report["per_query"] = {headline: b}
        report["significance"] = {
            "metric": headline,
            "baseline": f"first stage ({scored.setup.candidates})",
            "bootstrap": paired_bootstrap(a, b, samples=significance_samples).to_dict(),
            "randomization": randomization_test(a, b, samples=significance_samples).to_dict(),
        }
    else:
        report["metrics"] = {}
    answerable = data.answerable(split)
    if answerable is not None:
        answerable = {q: answerable[q] for q in scored.query_ids if q in answerable}
        abstention: dict[str, Any] = {"answerable": sum(answerable.values()), "unanswerable": sum(not v for v in answerable.values())}
        if threshold is not None and not (threshold == "calibrated" and calibration.threshold is None):
            kept = {q: decide(calibration, threshold, scored.logits.get(q, {})) for q in answerable}
            answered = {q: bool(docs) for q, docs in kept.items()}
            abstention.update(
                threshold=threshold if threshold == "calibrated" else float(threshold),
                probability_cut=calibration.threshold if threshold == "calibrated" else float(threshold),
                false_evidence_rate=false_evidence_rate(answered, answerable),
                hit_rate=hit_rate(answered, answerable),
            )
            report["metrics"]["false_evidence_rate"] = abstention["false_evidence_rate"]
            report["metrics"]["hit_rate"] = abstention["hit_rate"]
            if data.has_qrels(split):
                evidence, _ = _calibration_labels(data, split)
                judged = _for_queries(evidence, scored.query_ids) if evidence is not None else scored.judgments()
                cut_metric = ranking_metrics(judged, {q: kept.get(q, {}) for q in scored.query_ids}, [metrics[0]])
                abstention[f"{metrics[0]}_after_threshold"] = cut_metric[metrics[0].lower()]
        top = _top_per_query(probabilities, answerable)
        grid = np.linspace(0.0, 1.0, 101)
        curve = threshold_curve(probabilities, answerable, grid, confidence=top)
        abstention["curve"] = {k: [None if not np.isfinite(x) else float(x) for x in v] for k, v in curve.items()}
        # The best hit rate any cut on the top score could reach here: an upper bound, not a result.
        # It cuts the raw score, because a calibrator's plateaus (isotonic is flat beyond its end
        # knots) can map queries the model separates to one probability.
        raw_top = _top_per_query(scored.logits, answerable)
        best = select_threshold(probabilities, answerable, max_false_evidence=max_false_evidence, confidence=raw_top, clip=False)
        oracle = best.to_dict()
        oracle["score"] = "raw"
        oracle["probability_at_threshold"] = float(np.clip(calibration.calibrator.transform(np.array([best.threshold]))[0], 0.0, 1.0))
        abstention["oracle_on_this_split"] = oracle
        auc = separation_auc(raw_top, answerable)
        abstention["top_score_auc"] = auc if np.isfinite(auc) else None  # None: only one kind of query here
        report["abstention"] = abstention
    labels, source = _calibration_labels(data, split)
    if labels is not None:
        x, y = labelled_pairs(scored, labels, top=ece_top)
        p = np.clip(calibration.calibrator.transform(x), 0.0, 1.0) if len(x) else x
        x_all, y_all = labelled_pairs(scored, labels)
        p_all = np.clip(calibration.calibrator.transform(x_all), 0.0, 1.0) if len(x_all) else x_all
        report["calibration"].update(
            labels=source,
            ece_pairs=f"each query's top {min(ece_top, scored.setup.rerank_depth or scored.setup.depth)} by the reranker's score",
            ece=expected_calibration_error(p, y, bins) if len(p) else None,
            ece_all_candidates=expected_calibration_error(p_all, y_all, bins) if len(p_all) else None,
            bins=bins,
            pairs=len(p),
            positive_rate=float(y.mean()) if len(y) else None,
            mean_probability=float(p.mean()) if len(p) else None,
        )
        report["metrics"]["ece"] = report["calibration"]["ece"]
        report["_reliability"] = (p, y)
    else:
        report["calibration"]["ece"] = None
    return report


def _both_orders(scored: ScoredSplit, qrels: Qrels, metrics: Sequence[str], samples: int) -> dict[str, Any]:
    """The reranker's order alone and fused with the first stage, side by side, so the effect of fusion stays visible.

    The fused order uses the setup's weight when it fuses, else :data:`~crossrank.fusion.AUTO_WEIGHT`
    (the engine's ``"auto"``); candidates without retriever scores (fixed lists) have no fused order.
    """
    headline = metrics[0]
    alone = scored.ranking(0.0)
    orders: dict[str, Any] = {"reranker": ranking_metrics(qrels, alone, metrics), "fused": None}
    if not scored.has_retriever_scores:
        orders["note"] = "the candidates carry no retriever scores (the dataset's fixed lists), so 'auto' does not fuse"
        return orders
    weight = scored.applied_weight()
    weight = weight if weight > 0.0 else AUTO_WEIGHT
    fused = scored.ranking(weight)
    a = per_query_metric(qrels, alone, headline)
    b = per_query_metric(qrels, fused, headline)
    orders["fused"] = {"first_stage_weight": weight, "metrics": ranking_metrics(qrels, fused, metrics)}
    orders["significance"] = {
        "metric": headline,
        "baseline": "reranker alone",
        "bootstrap": paired_bootstrap(a, b, samples=samples).to_dict(),
        "randomization": randomization_test(a, b, samples=samples).to_dict(),
    }
    return orders


def compare_reports(report: Mapping[str, Any], baseline: Mapping[str, Any], *, samples: int = 10_000) -> dict[str, Any]:
    """Paired tests of ``report`` against another ``crossrank eval`` report on the same queries.

    Both reports must come from the same dataset, split and query set and hold per-query values of
    the same headline metric (reports written since per-query values were added do).

    Raises:
        InvalidInputError: the reports cannot be paired (different split, metric or queries).
    """
    if report.get("split") != baseline.get("split"):
        raise InvalidInputError(f"--compare needs a report of the same split; received {baseline.get('split')!r}, expected {report.get('split')!r}")
    ours, theirs = report.get("per_query") or {}, baseline.get("per_query") or {}
    if not ours:
        raise InvalidInputError("this run has no per-query metric values to compare (the split has no qrels)")
    metric = next(iter(ours))
    if metric not in theirs:
        raise InvalidInputError(
            f"--compare needs per-query {metric} values in the baseline report; it has {sorted(theirs) or 'none'} "
            "(rerun that evaluation with --cached-only to add them)"
        )
    a, b = theirs[metric], ours[metric]
    return {
        "metric": metric,
        "baseline": f"{baseline.get('scorer', {}).get('model', 'baseline')} ({baseline.get('setup', {}).get('candidates', '?')} "
                    f"depth {baseline.get('setup', {}).get('depth', '?')}, max_length {baseline.get('scorer', {}).get('max_length', '?')})",
        "bootstrap": paired_bootstrap(a, b, samples=samples).to_dict(),
        "randomization": randomization_test(a, b, samples=samples).to_dict(),
    }


def labelled_queries(scored: ScoredSplit) -> LabelledQueries:
    """A scored split's queries with their labels (``qrels/<split>-evidence.tsv`` when the dataset has it).

    Raises:
        InvalidInputError: the split has no qrels.
    """
    data, split = scored.dataset, scored.setup.split
    labels, source = _calibration_labels(data, split)
    if labels is None:
        raise InvalidInputError(f"{data.path}: split {split!r} has no qrels to fit a calibration on")
    queries = [q for q in scored.query_ids if scored.logits.get(q)]
    answerable = data.answerable(split)
    return LabelledQueries(
        logits={q: dict(scored.logits[q]) for q in queries},
        labels={q: dict(labels.get(q, {})) for q in queries},
        answerable=None if answerable is None else {q: answerable[q] for q in queries if q in answerable},
        judgments={q: dict(v) for q, v in scored.judgments().items()},
        source=source or "",
    )


def fit_calibration(
    scored: ScoredSplit,
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
) -> tuple[Calibration, dict[str, Any]]:
    """Fit a calibrator, a probability threshold and an abstention rule on one split's scores.

    The calibrator kind is chosen by ECE on a held-out share of the queries (then refitted on all
    of them); the abstention rule by hit rate under the false-evidence constraint on the held-out
    share; the final threshold is selected on all queries with that constraint (see
    :func:`crossrank.evaluation.fitting.fit_labelled`, which this calls).

    Returns the calibration and a report of the choices.
    """
    unknown = [k for k in kinds if k not in FITTABLE_KINDS]
    if unknown:
        raise InvalidInputError(f"calibrator kinds must come from {FITTABLE_KINDS}; received {unknown}")
    return fit_labelled(
        labelled_queries(scored), kinds=kinds, holdout=holdout, seed=seed, max_false_evidence=max_false_evidence,
        objective=objective, abstention_rules=abstention_rules, bins=bins, min_block=min_block,
        report_top=report_top, bootstrap_samples=bootstrap_samples,
    )


def select_first_stage_weight(
    scored: ScoredSplit, weights: Sequence[float], *, metric: str = "ndcg@10"
) -> tuple[float, dict[float, float]]:
    """The first-stage weight (see :mod:`crossrank.fusion`) with the best ``metric`` on ``scored``.

    Judged documents that ``include_judged`` added to the candidates are left out here: the
    retriever did not find them, so counting them would reward ranking against it. Ties go to the
    smaller weight (closest to the reranker alone).

    Returns:
        The chosen weight and ``{weight: metric value}`` for every weight tried.
    """
    if not weights:
        raise InvalidInputError("select_first_stage_weight needs at least one weight")
    checked = sorted({validate_first_stage_weight(w) for w in weights})
    added = scored.extra.get("judged_added") or {}
    qrels = scored.judgments()
    values: dict[float, float] = {}
    for weight in checked:
        ranking = scored.ranking(weight)
        for q, extra in added.items():
            for d in extra:
                ranking.get(q, {}).pop(d, None)
        values[weight] = ranking_metrics(qrels, ranking, [metric])[metric.lower()]
    best = max(checked, key=lambda w: (values[w], -w))
    return best, values


def _top_per_query(scores: Mapping[str, Mapping[str, float]], queries: Iterable[str]) -> dict[str, float]:
    """Each query's best score; minus infinity for a query with nothing scored (it ranks lowest)."""
    return {q: max(scores[q].values()) if scores.get(q) else -np.inf for q in queries}
