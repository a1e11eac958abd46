"""Score stage: (query, document) pairs to raw logits, the whole batch path in one file.

:class:`PairScorer` encodes pairs (long documents selected, truncated or windowed), plans
batches under the row and token budgets, runs them on the backend (one call per core when the
backend asks for concurrent calls), halves a batch that runs out of memory, and pools window
logits back to one logit per pair. :class:`CachedScorer` wraps it with a score cache keyed by
the loaded model's scorer id. Both return a :class:`Scored`: logits plus a
:class:`ScoringReport` of what happened, from which the engine builds each query's stats.

Scorers are safe to call from many threads: they keep no per-call state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crossrank.backends.base import BatchTooLargeError, ScoringBackend
from crossrank.batching import pad_batch, plan_batches
from crossrank.engine.loading import LoadedModel
from crossrank.errors import BackendUnavailableError
from crossrank.results import BatchShape
from crossrank.score_cache import ScoreCache, pair_key, scope_digest

__all__ = ["CachedScorer", "PairScorer", "Scored", "ScoringReport"]

logger = logging.getLogger("crossrank")

# Documents tokenized per slice: large enough for parallel tokenization, small enough that the
# tokenizer's per-document objects stay a few megabytes whatever the number of documents.
ENCODE_CHUNK = 256


@dataclass(frozen=True)
class ScoringReport:
    """What scoring a set of pairs did (shared by every query scored in the same call)."""

    pairs_scored: int = 0
    truncated_documents: int = 0
    windowed_documents: int = 0
    windows: int = 0
    truncated_queries: int = 0
    partially_scanned_documents: int = 0
    batches: tuple[BatchShape, ...] = ()
    cache_hits: int = 0
    tokenize_ms: float = 0.0
    model_ms: float = 0.0


@dataclass(frozen=True)
class Scored:
    """Raw logits in input order and the report of how they were computed."""

    logits: np.ndarray
    report: ScoringReport = field(default_factory=ScoringReport)


class PairScorer:
    """Scores pairs with one loaded model.

    Args:
        loaded: The loaded model.
        batch_size: Most rows per model call.
        token_budget: Most padded tokens per model call.
        window_pooling: ``"max"`` or ``"mean"`` of a windowed document's logits.
        show_progress: Show a progress bar on stderr for inputs over 64 pairs.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        batch_size: int,
        token_budget: int,
        window_pooling: str = "max",
        show_progress: bool = False,
    ) -> None:
        self.loaded = loaded
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.window_pooling = window_pooling
        self.show_progress = show_progress
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def score(self, queries: Sequence[str], texts: Sequence[str], query_of_pair: Sequence[int]) -> Scored:
        """Raw logits of ``(queries[query_of_pair[i]], texts[i])`` for every ``i``."""
        if not texts:
            return Scored(np.zeros(0, dtype=np.float64))
        backend, encoder = self.loaded.backend, self.loaded.encoder
        logits = np.empty(len(texts), dtype=np.float64)
        counts = {"pairs": 0, "truncated": 0, "windowed": 0, "windows": 0, "partially_scanned": 0}
        truncated_queries: set[int] = set()
        shapes: list[BatchShape] = []
        tokenize_ms = model_ms = 0.0
        progress = None
        if self.show_progress and len(texts) > 64:
            from tqdm import tqdm

            progress = tqdm(total=len(texts), unit="pair", desc="reranking", disable=None, leave=False)
        try:
            # Encode and score a slice of documents at a time: tokenizing every document up front
            # would make memory grow with the number of documents instead of staying bounded by
            # the token budget. Scores are batch-invariant, so slicing does not change them.
            for start in range(0, len(texts), ENCODE_CHUNK):
                end = min(start + ENCODE_CHUNK, len(texts))
                started = time.perf_counter()
                segments, report = encoder.encode(list(queries), list(texts[start:end]), list(query_of_pair[start:end]))
                counts["truncated"] += report.truncated_documents
                counts["windowed"] += report.windowed_documents
                counts["windows"] += report.windows
                counts["partially_scanned"] += report.partially_scanned_documents
                counts["pairs"] += len(segments)
                truncated_queries |= report.truncated_query_indices
                encoded = time.perf_counter()
                lengths = [len(s.input_ids) for s in segments]
                if backend.batch_invariant:
                    batches = plan_batches(lengths, batch_size=self.batch_size, token_budget=self.token_budget)
                else:
                    batches = [[i] for i in sorted(range(len(segments)), key=lambda i: -lengths[i])]
                row_logits = np.empty(len(segments), dtype=np.float64)
                shapes.extend(self._run_batches(backend, encoder.pad_id, segments, batches, row_logits))
                logits[start:end] = self._pool(row_logits, [s.pair for s in segments], end - start)
                del segments, row_logits
                if progress is not None:
                    progress.update(end - start)
                tokenize_ms += (encoded - started) * 1000
                model_ms += (time.perf_counter() - encoded) * 1000
        finally:
            if progress is not None:
                progress.close()
        report = ScoringReport(
            pairs_scored=counts["pairs"],
            truncated_documents=counts["truncated"],
            windowed_documents=counts["windowed"],
            windows=counts["windows"],
            truncated_queries=len(truncated_queries),
            partially_scanned_documents=counts["partially_scanned"],
            batches=tuple(shapes),
            tokenize_ms=tokenize_ms,
            model_ms=model_ms,
        )
        return Scored(logits, report)

    def _run_batches(
        self, backend: ScoringBackend, pad_id: int, segments: list[Any], batches: list[list[int]], out: np.ndarray
    ) -> list[BatchShape]:
        """Score every batch into ``out``; the shapes of the model calls, in batch order."""
        calls = max(1, int(getattr(backend, "concurrent_calls", 1)))
        if calls == 1 or len(batches) == 1:
            return [shape for batch in batches for shape in self._run_batch(backend, pad_id, segments, batch, out)]
        # Each call runs on one core (the backend sized its threads for this), so calls on
        # separate batches use every core without the synchronisation cost of splitting one
        # small matrix product across threads. Rows are independent, so the scores are the same.
        executor = self._pool_executor(calls)
        futures = [executor.submit(self._run_batch, backend, pad_id, segments, batch, out) for batch in batches]
        shapes: list[BatchShape] = []
        try:
            for future in futures:
                shapes.extend(future.result())
        finally:
            for future in futures:
                future.cancel()
        return shapes

    def _pool_executor(self, workers: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crossrank-score")
            return self._executor

    def _run_batch(
        self, backend: ScoringBackend, pad_id: int, segments: list[Any], batch: list[int], out: np.ndarray
    ) -> list[BatchShape]:
        input_ids, attention, types = pad_batch([(segments[i].input_ids, segments[i].token_type_ids) for i in batch], pad_id)
        try:
            logits = backend.score(input_ids, attention, types)
        except BatchTooLargeError:
            if len(batch) == 1:
                raise
            half = len(batch) // 2
            logger.warning("batch of %d rows ran out of memory; retrying as two halves", len(batch))
            return self._run_batch(backend, pad_id, segments, batch[:half], out) + self._run_batch(
                backend, pad_id, segments, batch[half:], out
            )
        logits = np.asarray(logits, dtype=np.float64).reshape(-1)
        if logits.shape[0] != len(batch):
            raise BackendUnavailableError(
                f"backend {backend.name} returned {logits.shape[0]} scores for a batch of {len(batch)} rows"
            )
        out[batch] = logits
        return [BatchShape(rows=len(batch), length=int(input_ids.shape[1]))]

    def _pool(self, row_logits: np.ndarray, pair_of_row: list[int], pairs: int) -> np.ndarray:
        maximum = self.window_pooling == "max"
        pooled = np.full(pairs, -np.inf if maximum else 0.0)
        counts = np.zeros(pairs)
        for logit, pair in zip(row_logits, pair_of_row):
            pooled[pair] = max(pooled[pair], logit) if maximum else pooled[pair] + logit
            counts[pair] += 1
        if not maximum:
            pooled /= counts
        # Non-finite logits would poison calibration and sorting; clamp them to the float range.
        return np.nan_to_num(pooled, nan=-1e4, posinf=1e4, neginf=-1e4)

    def close(self) -> None:
        """Stop the worker threads of concurrent calls (after the calls in flight)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


class CachedScorer:
    """A :class:`PairScorer` that reads and writes a score cache keyed by the model's scorer id.

    Pairs found in the cache are not scored; the report counts them in ``cache_hits``.
    """

    def __init__(self, scorer: PairScorer, cache: ScoreCache) -> None:
        self.scorer = scorer
        self.cache = cache
        self._scope: str | None = None

    @property
    def scope(self) -> str:
        """The scorer id and the calibrator: a recalibrated model never reads its old entries."""
        if self._scope is None:
            loaded = self.scorer.loaded
            self._scope = scope_digest({"scorer": loaded.scorer_id(), "calibrator": loaded.calibration.calibrator.to_dict()})
        return self._scope

    def score(self, queries: Sequence[str], texts: Sequence[str], query_of_pair: Sequence[int]) -> Scored:
        if not texts:
            return self.scorer.score(queries, texts, query_of_pair)
        scope = self.scope
        keys = [pair_key(scope, queries[q], text) for q, text in zip(query_of_pair, texts)]
        hits = self.cache.get_many(scope, keys)
        missing = [i for i, key in enumerate(keys) if key not in hits]
        scored = self.scorer.score(queries, [texts[i] for i in missing], [query_of_pair[i] for i in missing])
        logits = np.array([hits.get(key, np.nan) for key in keys], dtype=np.float64)
        if missing:
            logits[missing] = scored.logits
            self.cache.put_many(scope, {keys[i]: float(logits[i]) for i in missing})
        from dataclasses import replace

        return Scored(logits, replace(scored.report, cache_hits=len(texts) - len(missing)))

    def close(self) -> None:
        self.scorer.close()
