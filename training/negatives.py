"""Negative mining: which documents a positive is contrasted with.

- N0 ``random``: documents drawn from the whole corpus.
- N1 ``bm25``: drawn from the query's BM25 top ``pool_size`` (plus the all-MiniLM-L6-v2
  bi-encoder's top ``pool_size`` when ``bi_encoder`` is on).
- N2 ``iterative``: the pool's documents the current checkpoint scores highest; the trainer
  mines again at the start of every epoch with the checkpoint it has then.
- N3 ``mixed``: ``ratio = [hard, random]`` per positive (default 4 hard : 4 random).

Documents the data judges non-relevant (grade 0, or a lower grade than the positive) are used
first as hard negatives, with their grades as labels. Documents judged relevant are never used
as negatives. With ``false_negative_margin`` set, a hard negative the current model scores
above ``positive_logit - margin`` is skipped: it is more likely an unjudged positive.

A query judged with no relevant document (a no-answer query) yields one group of a
positive's size with label 0 throughout: its judged documents (its nearest misses) first, then
hard and random ones. A query without any judgment (unlabeled data for distillation) yields one
group of pool documents with label 0. Pointwise and teacher losses learn from such groups;
losses that compare a group's documents with its relevant ones get nothing from them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crossrank.training.config import NegativesConfig
from crossrank.training.data import RankingData

__all__ = ["Group", "NegativeMiner", "Scorer"]

Group = dict[str, Any]
"""``{"qid", "docs": [doc ids, positive first], "labels": [grades], "sources": [why each doc is there]}``.

Sources: ``positive``, ``judged`` (a judged lower-graded document), ``hard`` (from the pool),
``random``, ``unlabeled`` (pool documents of a query without judgments).
"""

Scorer = Callable[[str, Sequence[str]], Sequence[float]]
"""``scorer(query_text, document_texts) -> logits`` with the current model."""


class NegativeMiner:
    """Builds training groups for a list of queries.

    Example:
        >>> miner = NegativeMiner(data, NegativesConfig(strategy="random"))  # doctest: +SKIP
        >>> groups = miner.groups(["q1"], seed=0)  # doctest: +SKIP
    """

    def __init__(self, data: RankingData, config: NegativesConfig, *, bm25_stemmer: str = "english") -> None:
        self.data = data
        self.config = config
        self.bm25_stemmer = bm25_stemmer
        self._doc_ids = sorted(data.corpus)
        self._pools: dict[str, list[str]] = {}

    def needs_pool(self) -> bool:
        return self.config.strategy in ("bm25", "iterative") or (self.config.strategy == "mixed" and self.config.ratio[0] > 0)

    def needs_scorer(self) -> bool:
        hard_iterative = self.config.strategy == "iterative" or (
            self.config.strategy == "mixed" and self.config.hard_source == "iterative"
        )
        return hard_iterative or self.config.false_negative_margin is not None

    def build_pools(self, qids: Sequence[str]) -> dict[str, list[str]]:
        """Retrieve (once) the candidate pool of every query: BM25, optionally fused with the bi-encoder."""
        from crossrank.training.retrieval import Bm25Index, DenseIndex

        missing = [q for q in qids if q not in self._pools]
        if not missing:
            return self._pools
        texts = [self.data.queries[q] for q in missing]
        k = self.config.pool_size + 10
        runs = [Bm25Index(self.data.corpus, stemmer=self.bm25_stemmer).search(texts, k)]
        if self.config.bi_encoder:
            runs.append(DenseIndex(self.data.corpus).search(texts, k))
        for position, qid in enumerate(missing):
            merged: list[str] = []
            # Interleave the runs so both retrievers contribute their best documents first.
            for rank in range(k):
                for run in runs:
                    hits = run[position]
                    if rank < len(hits) and hits[rank][0] not in merged:
                        merged.append(hits[rank][0])
            self._pools[qid] = merged
        return self._pools

    @property
    def pools(self) -> dict[str, list[str]]:
        """Candidate pools retrieved so far, by query id."""
        return dict(self._pools)

    def set_pools(self, pools: Mapping[str, list[str]]) -> None:
        self._pools.update({q: list(v) for q, v in pools.items()})

    def groups(self, qids: Sequence[str], *, seed: int, scorer: Scorer | None = None) -> list[Group]:
        """One group per (query, positive); deterministic for a given seed, data and scorer."""
        config = self.config
        if self.needs_pool():
            self.build_pools(qids)
        if self.needs_scorer() and scorer is None:
            from crossrank.errors import ConfigurationError

            raise ConfigurationError("iterative negatives and the false-negative guard need the current model as scorer")
        rng = random.Random(seed)
        out: list[Group] = []
        for qid in qids:
            judged = self.data.qrels.get(qid, {})
            positives = sorted(d for d, g in judged.items() if g > 0)
            relevant = set(positives)
            pool = [d for d in self._pools.get(qid, []) if d not in relevant][: config.pool_size]
            scores: dict[str, float] = {}
            if scorer is not None:
                to_score = sorted(set(pool) | set(judged))
                texts = [self.data.corpus[d] for d in to_score]
                scores = dict(zip(to_score, (float(s) for s in scorer(self.data.queries[qid], texts))))
            if not positives and not judged:
                docs = pool[: config.num_negatives + 1]
                if docs:
                    out.append({"qid": qid, "docs": docs, "labels": [0.0] * len(docs), "sources": ["unlabeled"] * len(docs)})
                continue
            if not positives:
                # A no-answer query: a group the size of a positive's, its judged documents (the
                # nearest misses) first, then hard and random ones as for a positive.
                n_hard, n_random = self._counts()
                size = n_hard + n_random + 1
                docs = sorted(judged)[:size]
                hard = [d for d in self._hard_order(pool, scores, rng) if d not in judged]
                docs += hard[: max(0, n_hard + 1 - len(docs))]
                docs += self._random(rng, size - len(docs), set(judged) | set(docs))
                sources = ["judged" if d in judged else "hard" if d in hard else "random" for d in docs]
                out.append({"qid": qid, "docs": docs, "labels": [0.0] * len(docs), "sources": sources})
                continue
            for positive in positives:
                grade = judged[positive]
                n_hard, n_random = self._counts()
                # Judged lower-graded documents are the most informative hard negatives.
                explicit = sorted((d for d, g in judged.items() if g < grade), key=lambda d: (-judged[d], d))
                hard_candidates = explicit + [d for d in self._hard_order(pool, scores, rng) if d not in judged]
                if config.false_negative_margin is not None:
                    limit = scores[positive] - float(config.false_negative_margin)
                    hard_candidates = [d for d in hard_candidates if d in explicit or scores.get(d, limit) <= limit]
                chosen = hard_candidates[:n_hard]
                sources = ["judged" if d in explicit else "hard" for d in chosen]
                taken = set(chosen) | relevant | {positive}
                # bm25/iterative top up with random documents when the pool runs short.
                extra = self._random(rng, n_random + (n_hard - len(chosen) if self.config.strategy != "mixed" else 0), taken)
                chosen += extra
                sources += ["random"] * len(extra)
                docs = [positive, *chosen]
                labels = [grade] + [float(judged.get(d, 0.0)) for d in chosen]
                out.append({"qid": qid, "docs": docs, "labels": labels, "sources": ["positive", *sources]})
        return out

    def _counts(self) -> tuple[int, int]:
        config = self.config
        if config.strategy == "random":
            return 0, config.num_negatives
        if config.strategy == "mixed":
            return config.ratio[0], config.ratio[1]
        return config.num_negatives, 0

    def _hard_order(self, pool: list[str], scores: Mapping[str, float], rng: random.Random) -> list[str]:
        iterative = self.config.strategy == "iterative" or (
            self.config.strategy == "mixed" and self.config.hard_source == "iterative"
        )
        if self.config.strategy == "random":
            return []
        if iterative:
            return sorted(pool, key=lambda d: (-scores[d], d))
        # Retriever-hard: a random sample of the pool, so epochs see different negatives.
        shuffled = list(pool)
        rng.shuffle(shuffled)
        return shuffled

    def _random(self, rng: random.Random, count: int, exclude: set[str]) -> list[str]:
        chosen: list[str] = []
        available = len(self._doc_ids) - len(exclude)
        count = max(0, min(count, available))
        while len(chosen) < count:
            doc = self._doc_ids[rng.randrange(len(self._doc_ids))]
            if doc not in exclude and doc not in chosen:
                chosen.append(doc)
        return chosen
