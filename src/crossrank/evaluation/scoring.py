"""Scoring candidate lists with a reranker, through the on-disk score cache."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from crossrank.evaluation.cache import ScoreCache, pair_key
from crossrank.evaluation.datasets import BeirDataset

__all__ = ["Scores", "score_candidates"]

Scores = dict[str, dict[str, float]]
"""``{query_id: {doc_id: raw logit}}``."""


def score_candidates(
    reranker: object,
    dataset: BeirDataset,
    candidates: Mapping[str, list[str]],
    cache: ScoreCache,
    *,
    chunk_pairs: int = 256,
    progress: bool = False,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Scores:
    """Raw logits for every (query, candidate) pair, computing only those missing from ``cache``.

    Missing pairs are scored rank by rank (every query's first candidate, then every second one,
    ...), so a run that is stopped early leaves a cache that already covers the top of every
    list. Each chunk is flushed to disk before the next starts.

    Args:
        reranker: A :class:`crossrank.Reranker` (anything with ``score(pairs, raw=True)``).
        dataset: Supplies query and passage text.
        candidates: ``{query_id: [doc_id, ...]}``.
        cache: Where scores are read from and appended to.
        chunk_pairs: Pairs per call to ``score`` (and per flush).
        progress: Show a progress bar on stderr.
        on_chunk: Called with ``(done, total)`` after each chunk.
    """
    keys: dict[tuple[str, str], str] = {}
    todo: list[tuple[int, str, str]] = []
    for query_id, doc_ids in candidates.items():
        query = dataset.queries[query_id]
        for rank, doc_id in enumerate(doc_ids):
            key = pair_key(query, dataset.document(doc_id))
            keys[(query_id, doc_id)] = key
            if key not in cache:
                todo.append((rank, query_id, doc_id))
    todo.sort(key=lambda item: item[0])
    seen: set[str] = set()
    unique = []
    for item in todo:
        key = keys[(item[1], item[2])]
        if key not in seen:
            seen.add(key)
            unique.append(item)
    bar = None
    if progress and unique:
        from tqdm import tqdm

        bar = tqdm(total=len(unique), unit="pair", desc="scoring", file=sys.stderr, leave=False)
    try:
        for start in range(0, len(unique), chunk_pairs):
            chunk = unique[start : start + chunk_pairs]
            pairs = [(dataset.queries[q], dataset.document(d)) for _, q, d in chunk]
            logits = reranker.score(pairs, raw=True)  # type: ignore[attr-defined]
            cache.add({keys[(q, d)]: float(v) for (_, q, d), v in zip(chunk, logits)})
            if bar is not None:
                bar.update(len(chunk))
            if on_chunk is not None:
                on_chunk(start + len(chunk), len(unique))
    finally:
        if bar is not None:
            bar.close()
    return cached_scores(dataset, candidates, cache)


def cached_scores(dataset: BeirDataset, candidates: Mapping[str, list[str]], cache: ScoreCache) -> Scores:
    """The scores ``cache`` already holds for ``candidates`` (pairs not yet scored are left out)."""
    out: Scores = {}
    for query_id, doc_ids in candidates.items():
        query = dataset.queries[query_id]
        row: dict[str, float] = {}
        for doc_id in doc_ids:
            value = cache.get(pair_key(query, dataset.document(doc_id)))
            if value is not None:
                row[doc_id] = value
        out[query_id] = row
    return out
