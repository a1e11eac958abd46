"""Test-set evaluation of a training run: base vs fine-tuned nDCG@10 with a paired bootstrap.

Used by ``crossrank train CONFIG --evaluate BEIR_DIR --benchmark SECTION``: after training, the
base model and the finished model (int8 and fp32 ONNX) rerank the BM25 top-``depth`` candidates
of ``queries`` test queries; the figures, wall time and peak memory go to ``BENCHMARKS.md``.
Scores are cached on disk per pair and scorer settings (``crossrank.evaluation.cache.scorer_settings``:
model and revision, backend, lengths, long-document handling, activation mode), so a rerun
never scores a pair twice.
"""

from __future__ import annotations

import hashlib
import json
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from crossrank.training.metrics import ndcg_at_k

from crossrank.models.files import atomic_write_text

__all__ = ["TestEvaluation", "accelerator_peak", "evaluate_models", "paired_bootstrap", "peak_memory_mib"]


def peak_memory_mib() -> float:
    """Peak resident memory of this process (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def accelerator_peak(device: str) -> str | None:
    """``"<GPU name>, peak memory allocated by PyTorch N MiB"`` for a CUDA device, None on CPU.

    Resident memory (:func:`peak_memory_mib`) does not count GPU memory, so a GPU run reports both.
    """
    if not device.startswith("cuda"):
        return None
    import torch

    index = torch.device(device).index or 0
    return f"{torch.cuda.get_device_name(index)}, peak memory allocated by PyTorch {torch.cuda.max_memory_allocated(index) / 2**20:.0f} MiB"


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, samples: int = 10000, seed: int = 0) -> float:
    """One-sided p-value that ``mean(b) > mean(a)`` is chance: share of query resamples with no gain.

    Example:
        >>> paired_bootstrap([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == 1.0
        True
    """
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(samples, len(diff)))].mean(axis=1)
    return float(np.mean(means <= 0))


@dataclass
class TestEvaluation:
    queries: list[str]
    per_query: dict[str, list[float]]
    depth: int

    def mean(self, label: str) -> float:
        return float(np.mean(self.per_query[label]))


def _cached_scores(reranker: Any, key: str, pairs: list[tuple[str, str]], cache_dir: Path) -> np.ndarray:
    cache_file = cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"
    cache: dict[str, float] = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    keys = [hashlib.sha1(f"{q}\x00{d}".encode()).hexdigest() for q, d in pairs]
    missing = [i for i, k in enumerate(keys) if k not in cache]
    for start in range(0, len(missing), 256):
        chunk = missing[start : start + 256]
        scores = reranker.score([pairs[i] for i in chunk], raw=True)
        cache.update({keys[i]: float(s) for i, s in zip(chunk, scores)})
        atomic_write_text(cache_file, json.dumps(cache))
    return np.asarray([cache[k] for k in keys])


def evaluate_models(
    models: Mapping[str, tuple[str, Mapping[str, Any]]],
    beir_dir: str | Path,
    *,
    split: str = "test",
    queries: int | None = None,
    depth: int = 100,
    max_length: int = 256,
    cache_dir: str | Path,
    bm25_stemmer: str = "english",
    long_documents: str | None = None,
) -> TestEvaluation:
    """Rerank BM25 top-``depth`` of the first ``queries`` judged test queries with each model.

    Args:
        models: ``label -> (model path or name, extra Reranker options)``.
        long_documents: Passed to every ``Reranker`` (default: the Reranker's own default).
    """
    from crossrank.training.data import DataSpec, load_data
    from crossrank.training.retrieval import Bm25Index

    from crossrank import Reranker
    from crossrank.config import RerankerConfig
    from crossrank.evaluation.cache import scorer_settings

    data = load_data(DataSpec(format="beir", path=str(beir_dir), split=split))
    qids = data.judged_queries()
    if queries is not None:
        qids = qids[:queries]
    hits = Bm25Index(data.corpus, stemmer=bm25_stemmer).search([data.queries[q] for q in qids], depth)
    candidates = {q: [d for d, _ in row] for q, row in zip(qids, hits)}
    pairs = [(data.queries[q], data.corpus[d]) for q in qids for d in candidates[q]]
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    per_query: dict[str, list[float]] = {}
    for label, (model, options) in models.items():
        handling = {"long_documents": long_documents} if long_documents else {}
        reranker = Reranker.from_config(RerankerConfig(model=str(model), max_length=max_length, **handling, **dict(options)))
        scores = _cached_scores(reranker, json.dumps(scorer_settings(reranker), sort_keys=True), pairs, cache)
        reranker.close()
        values, position = [], 0
        for q in qids:
            docs = candidates[q]
            row = scores[position : position + len(docs)]
            position += len(docs)
            ranked = [docs[i] for i in np.argsort(-row, kind="stable")]
            values.append(ndcg_at_k(ranked, data.qrels[q], 10))
        per_query[label] = values
    return TestEvaluation(queries=qids, per_query=per_query, depth=depth)
