"""The primary path: score every request's pairs in one pass, then decide each query.

Stats are built here from the stages' outputs (the scoring report and each query's
:class:`~crossrank.engine.decision.Decision`), once, instead of being updated along the way.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from crossrank.engine.decision import Decision, Policy, decide
from crossrank.engine.loading import LoadedModel
from crossrank.engine.requests import Request
from crossrank.engine.scoring import Scored, ScoringReport
from crossrank.results import RerankResult, RerankStats, ScoredDocument

__all__ = ["Scorer", "rank_requests", "build_result"]


class Scorer(Protocol):
    """What the primary path needs from a scorer (:class:`~crossrank.engine.scoring.PairScorer` or its cached form)."""

    def score(self, queries: list[str], texts: list[str], query_of_pair: list[int]) -> Scored: ...


def rank_requests(loaded: LoadedModel, scorer: Scorer, requests: list[Request], policy: Policy) -> list[RerankResult]:
    """Score all requests' pairs together (one batched pass), then rank each query."""
    queries: list[str] = []
    texts: list[str] = []
    query_of_pair: list[int] = []
    spans: list[tuple[int, int]] = []
    for request in requests:
        spans.append((len(texts), len(texts) + len(request.texts)))
        query_of_pair.extend([len(queries)] * len(request.texts))
        queries.append(request.query)
        texts.extend(request.texts)
    scored = scorer.score(queries, texts, query_of_pair)
    results = []
    for request, (start, end) in zip(requests, spans):
        if start == end:
            stats = RerankStats(documents=0, backend=loaded.backend.name, model=loaded.model_id)
            results.append(RerankResult([], query=request.query, threshold=None, stats=stats))
            continue
        started = time.perf_counter()
        decision = decide(scored.logits[start:end], loaded.calibration, policy, request.first_stage)
        # Several queries share the model calls: counts stay call-wide, documents are per query.
        results.append(build_result(loaded, request, scored.logits[start:end], decision, scored.report, started))
    return results


def build_result(
    loaded: LoadedModel,
    request: Request,
    logits: np.ndarray,
    decision: Decision,
    report: ScoringReport,
    started: float,
) -> RerankResult:
    """One query's result and stats from its logits, its decision and the scoring report."""
    documents = [
        ScoredDocument(
            index=i,
            text=request.texts[i],
            score=float(decision.probabilities[i]),
            raw_score=float(logits[i]),
            metadata=request.metadata[i],
            rank=rank,
        )
        for rank, i in enumerate(decision.kept, start=1)
    ]
    stats = RerankStats(
        documents=len(request.texts),
        pairs_scored=report.pairs_scored,
        truncated_documents=report.truncated_documents,
        windowed_documents=report.windowed_documents,
        windows=report.windows,
        truncated_queries=report.truncated_queries,
        partially_scanned_documents=report.partially_scanned_documents,
        batches=list(report.batches),
        dropped_by_threshold=decision.dropped,
        abstained=decision.abstained,
        backend=loaded.backend.name,
        model=loaded.model_id,
        cache_hits=report.cache_hits,
        best_score=decision.best_score,
        first_stage_weight=decision.first_stage_weight,
        score_drift=None if loaded.drift is None else loaded.drift.observe(float(np.max(logits))),
        tokenize_ms=report.tokenize_ms,
        model_ms=report.model_ms,
        post_ms=(time.perf_counter() - started) * 1000,
    )
    return RerankResult(documents, query=request.query, threshold=decision.cut, stats=stats)
