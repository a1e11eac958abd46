"""Ranking metrics used by the trainer (linear gain, as trec_eval and BEIR compute them)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["mean_ndcg", "ndcg_at_k"]


def ndcg_at_k(ranked: Sequence[str], judgments: Mapping[str, float], k: int = 10) -> float:
    """nDCG@k of one ranked list; ``judgments`` maps document ids to graded relevance.

    Example:
        >>> ndcg_at_k(["a", "b"], {"b": 1})
        0.6309297535714575
    """
    dcg = sum(float(judgments.get(doc, 0.0)) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted((float(g) for g in judgments.values() if g > 0), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mean_ndcg(
    rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, float]], k: int = 10
) -> float:
    """Mean nDCG@k over the queries of ``rankings`` that have at least one relevant judgment."""
    values = [
        ndcg_at_k(ranked, qrels[qid], k)
        for qid, ranked in rankings.items()
        if any(g > 0 for g in qrels.get(qid, {}).values())
    ]
    return sum(values) / len(values) if values else 0.0
