"""Ranking metrics used by the trainer: the evaluation's nDCG, on ranked lists or scores.

Both functions delegate to :func:`crossrank.evaluation.metrics.ndcg` (linear graded gains, as
trec_eval and BEIR compute them), so the trainer's dev nDCG and ``crossrank eval``'s nDCG are the
same number. Given scores, documents are ranked by descending score with ties broken by document
id ascending (:func:`crossrank.evaluation.metrics.rank_by_score`); given a list, its order is
the ranking. Grades of 0 or below count as not relevant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from crossrank.errors import InvalidInputError
from crossrank.evaluation.metrics import ndcg

__all__ = ["mean_ndcg", "ndcg_at_k"]

Ranking = Sequence[str] | Mapping[str, float]
"""A ranked list of document ids (best first) or ``{doc_id: score}``."""


def _as_scores(ranking: Ranking) -> Mapping[str, float]:
    if isinstance(ranking, Mapping):
        return ranking
    if isinstance(ranking, str):
        raise InvalidInputError(f"a ranking must be a list of document ids or a mapping of scores; received str {ranking[:40]!r}")
    ranked = list(ranking)
    scores = {doc_id: float(len(ranked) - rank) for rank, doc_id in enumerate(ranked)}
    if len(scores) != len(ranked):
        repeated = sorted({d for d in ranked if ranked.count(d) > 1})
        raise InvalidInputError(f"a ranking lists each document once; received {repeated[:5]} more than once")
    return scores


def ndcg_at_k(ranked: Ranking, judgments: Mapping[str, float], k: int = 10) -> float:
    """nDCG@k of one ranking; ``judgments`` maps document ids to graded relevance.

    Example:
        >>> ndcg_at_k(["a", "b"], {"b": 1})
        0.6309297535714575
    """
    return ndcg(judgments, _as_scores(ranked), k)


def mean_ndcg(rankings: Mapping[str, Ranking], qrels: Mapping[str, Mapping[str, float]], k: int = 10) -> float:
    """Mean nDCG@k over the queries of ``rankings`` that have at least one relevant judgment."""
    values = [
        ndcg(qrels[qid], _as_scores(ranking), k)
        for qid, ranking in rankings.items()
        if any(g > 0 for g in qrels.get(qid, {}).values())
    ]
    return sum(values) / len(values) if values else 0.0
