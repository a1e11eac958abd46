"""Fallback serving: when the primary reranker fails, runs past its deadline, or is unsure.

A :class:`~crossrank.Reranker` given ``fallback=`` runs its own model first (the *primary*)
and hands the request to the fallback when

- the primary raises (a model that cannot be loaded counts as a failure),
- the primary has not answered within ``primary_timeout`` seconds, or
- the primary is not confident: its best calibrated score is below ``min_confidence``.

The fallback is another :class:`~crossrank.Reranker` (or a model name, built as one) or any
callable ``(query, texts) -> scores`` such as an application's LLM judge; a callable's scores
must be relevance probabilities in [0, 1]. ``result.served_by`` says which path answered and
``result.stats.fallback_reason`` why.

A primary that runs past its deadline is not interrupted (Python cannot stop a thread): it
keeps running in a daemon thread and its answer is discarded; at most ``max_abandoned_calls``
such calls may be running, beyond which the fallback serves at once (see
:mod:`crossrank.engine.serving`, where the chain lives). A first call that has to load
the model counts the loading time against the deadline, so call ``warm_up()`` at start-up.

Example:
    >>> from crossrank import Reranker
    >>> def keyword_judge(query, texts):
    ...     words = set(query.lower().split())
    ...     return [len(words & set(t.lower().split())) / max(len(words), 1) for t in texts]
    >>> reranker = Reranker("/models/missing", fallback=keyword_judge, allow_download=False)
    >>> reranker.rerank("red apples", ["green pears", "red apples"]).served_by  # doctest: +SKIP
    'fallback'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from crossrank.errors import CrossRankError, PluginError, describe
from crossrank.results import RerankResult, RerankStats, ScoredDocument

__all__ = [
    "PrimaryTimeoutError",
    "ScoringFunction",
    "rank_callable_scores",
    "callable_reference",
]


ScoringFunction = Callable[[str, list[str]], Sequence[float]]
"""A fallback callable: ``(query, texts) -> one relevance probability per text``."""


class PrimaryTimeoutError(CrossRankError, TimeoutError):
    """The primary reranker did not answer within its deadline."""


def callable_reference(function: object) -> str:
    """``module:qualname`` of a callable, for stats and ``to_dict``."""
    module = getattr(function, "__module__", None) or type(function).__module__
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}:{name}"


def rank_callable_scores(
    function: ScoringFunction,
    query: str,
    texts: list[str],
    metadata: list[dict[str, Any]],
    *,
    top_k: int | None,
    cut: float | None,
    stats: RerankStats,
) -> RerankResult:
    """Score ``texts`` with a fallback callable and rank them like the engine does."""
    if not texts:
        return RerankResult([], query=query, threshold=cut, stats=stats)
    scores = function(query, list(texts))
    try:
        values = np.asarray(list(scores), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise PluginError(
            f"fallback {callable_reference(function)} must return one number per document; received {describe(scores)}"
        ) from None
    if values.shape[0] != len(texts):
        raise PluginError(
            f"fallback {callable_reference(function)} returned {values.shape[0]} scores for {len(texts)} documents"
        )
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise PluginError(
            f"fallback {callable_reference(function)} must return probabilities in [0, 1]; received {values.tolist()!r}"
        )
    order = sorted(range(len(texts)), key=lambda i: (-values[i], i))
    kept = order if cut is None else [i for i in order if values[i] >= cut]
    stats.dropped_by_threshold = len(order) - len(kept)
    stats.abstained = cut is not None and not kept
    stats.best_score = float(values[order[0]])
    if top_k is not None:
        kept = kept[:top_k]
    documents = [
        ScoredDocument(
            index=i, text=texts[i], score=float(values[i]), raw_score=float(values[i]), metadata=metadata[i], rank=rank
        )
        for rank, i in enumerate(kept, start=1)
    ]
    return RerankResult(documents, query=query, threshold=cut, stats=stats)
