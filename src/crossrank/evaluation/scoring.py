"""Scoring candidate lists with a reranker, through the on-disk score cache."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from crossrank.evaluation.cache import EvalScoreCache
from crossrank.evaluation.datasets import BeirDataset

__all__ = ["Scores", "cached_scores", "score_candidates"]

Scores = dict[str, dict[str, float]]
"""``{query_id: {doc_id: raw logit}}``."""


def _pair_keys(dataset: BeirDataset, candidates: Mapping[str, list[str]], cache: EvalScoreCache) -> dict[tuple[str, str], str]:
    keys: dict[tuple[str, str], str] = {}
    for query_id, doc_ids in candidates.items():
        query = dataset.queries[query_id]
        for doc_id in doc_ids:
            keys[(query_id, doc_id)] = cache.key(query, dataset.document(doc_id))
    return keys


def score_candidates(
    reranker: object,
    dataset: BeirDataset,
    candidates: Mapping[str, list[str]],
    cache: EvalScoreCache,
    *,
    chunk_pairs: int = 256,
    progress: bool = False,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Scores:
    """Raw logits for every (query, candidate) pair, computing only those missing from ``cache``.

    Missing pairs are scored rank by rank (every query's first candidate, then every second one,
    ...), so a run that is stopped early leaves a cache that already covers the top of every
    list. Each chunk is committed to the cache before the next starts.

    Args:
        reranker: A :class:`crossrank.Reranker` (anything with ``score(pairs, raw=True)``).
        dataset: Supplies query and passage text.
        candidates: ``{query_id: [doc_id, ...]}``.
        cache: Where scores are read from and written to.
        chunk_pairs: Pairs per call to ``score`` (and per commit).
        progress: Show a progress bar on stderr.
        on_chunk: Called with ``(done, total)`` after each chunk.
    """
    keys = _pair_keys(dataset, candidates, cache)
    known = cache.get_many(keys.values())
    todo = sorted(
        ((rank, q, d) for q, docs in candidates.items() for rank, d in enumerate(docs) if keys[(q, d)] not in known),
        key=lambda item: item[0],
    )
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
            new = {keys[(q, d)]: float(v) for (_, q, d), v in zip(chunk, logits)}
            cache.put_many(new)
            known.update(new)
            if bar is not None:
                bar.update(len(chunk))
            if on_chunk is not None:
                on_chunk(start + len(chunk), len(unique))
    finally:
        if bar is not None:
            bar.close()
    return _arrange(candidates, keys, known)


def cached_scores(dataset: BeirDataset, candidates: Mapping[str, list[str]], cache: EvalScoreCache) -> Scores:
    """The scores ``cache`` already holds for ``candidates`` (pairs not yet scored are left out)."""
    keys = _pair_keys(dataset, candidates, cache)
    return _arrange(candidates, keys, cache.get_many(keys.values()))


def _arrange(candidates: Mapping[str, list[str]], keys: Mapping[tuple[str, str], str], known: Mapping[str, float]) -> Scores:
    out: Scores = {}
    for query_id, doc_ids in candidates.items():
        out[query_id] = {d: known[keys[(query_id, d)]] for d in doc_ids if keys[(query_id, d)] in known}
    return out
