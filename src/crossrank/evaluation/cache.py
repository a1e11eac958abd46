"""On-disk caches for candidate lists and model scores.

Scoring 30,000 pairs takes most of an hour on a small CPU, so every score is written to disk as
soon as its batch finishes and is never computed twice. Scores are keyed by everything that can
change a logit (model name and revision, or the weights' hash when the model has no revision;
backend, token limits, long-document handling, and for graphs with full-range 8-bit activations
the CPU's int8 instruction set) and,
within that, by a digest of the exact query and passage text, so a cache is shared by every
dataset, split and candidate depth that contains the same pair.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from crossrank.errors import ConfigurationError
from crossrank.models.config import UNVERSIONED
from crossrank.models.files import sha256_file
from crossrank.quantization import activation_setting, int8_instruction_set

__all__ = ["ScoreCache", "default_cache_dir", "pair_key", "scorer_settings", "settings_digest", "weights_fingerprint"]

CACHE_ENV = "CROSSRANK_EVAL_CACHE"


def default_cache_dir() -> Path:
    """``$CROSSRANK_EVAL_CACHE`` if set, else ``<crossrank home>/eval-cache``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from crossrank.models.files import crossrank_home

    return crossrank_home() / "eval-cache"


def pair_key(query: str, passage: str) -> str:
    """A digest of one (query, passage) text pair."""
    return hashlib.sha1(f"{query}\x1f{passage}".encode()).hexdigest()[:24]


def settings_digest(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode()).hexdigest()[:16]


def scorer_settings(reranker: Any) -> dict[str, Any]:
    """Everything about a :class:`~crossrank.Reranker` that can change a raw score."""
    config = reranker.model_config
    max_length = reranker.max_length or config.max_length
    settings: dict[str, Any] = {
        "model": reranker.model_id,
        "backend": reranker.backend_name,
        "max_length": max_length,
        "max_query_length": reranker.max_query_length,
        "long_documents": reranker.long_documents,
        "window_overlap": reranker.window_overlap if reranker.long_documents == "window" else None,
        "window_pooling": reranker.window_pooling if reranker.long_documents == "window" else None,
        "max_windows": reranker.max_windows if reranker.long_documents == "window" else None,
    }
    activation = activation_setting(config.quantization, reranker.quantization)
    if activation is not None:
        settings["activation_quantization"] = activation
    if settings["backend"] == "onnx" and (activation == "per-tensor" or config.quantization == "static-int8"):
        # Full-range 8-bit activations: without VNNI the int8 products saturate, so these scores
        # depend on the CPU (see crossrank.quantization.int8_instruction_set).
        settings["int8_kernels"] = int8_instruction_set()
    if config.revision == UNVERSIONED:
        # ``name@unversioned`` names no particular weights: two local folders called ``model``
        # would share one cache and each read the other's scores. Their weight files tell them apart.
        settings["model_fingerprint"] = weights_fingerprint(reranker.model_path, (config.onnx_file, config.torch_weights))
    return settings


def weights_fingerprint(folder: Path, files: Iterable[str | None]) -> str:
    """SHA-256 over the named weight files that exist in ``folder`` (names and contents)."""
    digest = hashlib.sha256()
    for name in sorted(f for f in files if f):
        path = Path(folder) / name
        if path.is_file():
            digest.update(f"{name}\x00{sha256_file(path)}\x00".encode())
    return digest.hexdigest()


class ScoreCache:
    """Raw logits of one scorer configuration, appended to a TSV file as they are computed.

    Args:
        root: Cache folder (see :func:`default_cache_dir`).
        settings: The scorer settings (see :func:`scorer_settings`); their digest names the file.

    Example:
        >>> cache = ScoreCache(tmp, {"model": "m@1", "max_length": 512})  # doctest: +SKIP
        >>> cache.add({pair_key("q", "p"): 1.5})  # doctest: +SKIP
    """

    def __init__(self, root: str | Path, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.folder = Path(root) / "scores" / settings_digest(self.settings)
        self._scores: dict[str, float] | None = None

    @property
    def file(self) -> Path:
        return self.folder / "scores.tsv"

    def _load(self) -> dict[str, float]:
        if self._scores is None:
            scores: dict[str, float] = {}
            if self.file.is_file():
                with self.file.open(encoding="utf-8") as handle:
                    for line in handle:
                        key, _, value = line.rstrip("\n").partition("\t")
                        try:
                            scores[key] = float(value)
                        except ValueError:
                            continue  # a line cut short by a killed run; that pair is scored again
            self._scores = scores
        return self._scores

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, key: object) -> bool:
        return key in self._load()

    def get(self, key: str) -> float | None:
        return self._load().get(key)

    def missing(self, keys: Iterable[str]) -> list[str]:
        scores = self._load()
        return [k for k in keys if k not in scores]

    def add(self, scores: Mapping[str, float]) -> None:
        """Append scores and flush them to disk at once."""
        if not scores:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        settings_file = self.folder / "settings.json"
        if not settings_file.is_file():
            settings_file.write_text(json.dumps(self.settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        elif json.loads(settings_file.read_text(encoding="utf-8")) != self.settings:
            raise ConfigurationError(f"score cache {self.folder} belongs to other settings; remove it or use another cache folder")
        with self.file.open("a", encoding="utf-8") as handle:
            handle.write("".join(f"{k}\t{float(v)!r}\n" for k, v in scores.items()))
            handle.flush()
            os.fsync(handle.fileno())
        self._load().update({k: float(v) for k, v in scores.items()})
