"""``crossrank eval``'s on-disk score cache and the identity of the scorer it is keyed by.

Scoring 30,000 pairs takes most of an hour on a small CPU, so every score is written to disk as
soon as its batch finishes and is never computed twice. The cache is the runtime score cache's
SQLite store (:class:`crossrank.score_cache.SqliteScoreCache`, one file
``<cache dir>/scores.sqlite``, unbounded), used one scope at a time: the scope is the scorer's
identity (see :func:`scorer_settings`: model name and revision, or the weights' hash when the
model has no revision; backend, token limits, long-document handling, and for graphs with
full-range 8-bit activations the CPU's int8 instruction set), and within a scope entries are
keyed by :func:`crossrank.score_cache.pair_key` of the exact query and passage text, so a cache
is shared by every dataset, split and candidate depth that contains the same pair.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from crossrank.errors import ConfigurationError, describe
from crossrank.models.files import sha256_file
from crossrank.score_cache import ScopedScoreCache, SqliteScoreCache, pair_key, scope_digest

__all__ = [
    "EVAL_CACHE_FILE",
    "EvalScoreCache",
    "default_cache_dir",
    "pair_key",
    "scorer_scope",
    "scorer_settings",
    "settings_digest",
    "weights_fingerprint",
]

EVAL_CACHE_FILE = "scores.sqlite"
CACHE_ENV = "CROSSRANK_EVAL_CACHE"


def default_cache_dir() -> Path:
    """``$CROSSRANK_EVAL_CACHE`` if set, else ``<crossrank home>/eval-cache``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from crossrank.models.files import crossrank_home

    return crossrank_home() / "eval-cache"


def settings_digest(settings: Mapping[str, Any]) -> str:
    """A short digest of JSON settings (names candidate-list files)."""
    return hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode()).hexdigest()[:16]


def scorer_settings(reranker: Any, scorer_id: str | None = None) -> dict[str, Any]:
    """Everything about a :class:`~crossrank.Reranker` that can change a raw score.

    This is the engine's own scorer identity (:func:`crossrank.engine.loading.scorer_identity`),
    so ``crossrank eval``'s cache, the runtime score cache and the calibration-mismatch check
    agree on when two scores are the same.

    Args:
        reranker: The reranker whose scores are cached.
        scorer_id: A precomputed identity of the scorer. When given, it is recorded as
            ``"scorer_id"`` and :func:`scorer_scope` uses it as the cache scope as it is.
    """
    if scorer_id is not None and (not isinstance(scorer_id, str) or not scorer_id):
        raise ConfigurationError(f"scorer_id must be a non-empty string; received {describe(scorer_id)}")
    settings = reranker.loaded.identity()
    if scorer_id is not None:
        settings["scorer_id"] = scorer_id
    return settings


def scorer_scope(settings: Mapping[str, Any]) -> str:
    """The cache scope of scorer settings: their ``"scorer_id"`` if set, else a SHA-256 of them all."""
    scorer_id = settings.get("scorer_id")
    if scorer_id is not None:
        if not isinstance(scorer_id, str) or not scorer_id:
            raise ConfigurationError(f"scorer_id must be a non-empty string; received {describe(scorer_id)}")
        return scorer_id
    return scope_digest(settings)


def weights_fingerprint(folder: Path, files: Iterable[str | None]) -> str:
    """SHA-256 over the named weight files that exist in ``folder`` (names and contents)."""
    digest = hashlib.sha256()
    for name in sorted(f for f in files if f):
        path = Path(folder) / name
        if path.is_file():
            digest.update(f"{name}\x00{sha256_file(path)}\x00".encode())
    return digest.hexdigest()


class EvalScoreCache(ScopedScoreCache):
    """Raw logits of one scorer in ``crossrank eval``'s SQLite score store.

    A :class:`~crossrank.score_cache.ScopedScoreCache` over an unbounded, strict
    :class:`~crossrank.score_cache.SqliteScoreCache` at ``<root>/scores.sqlite``: nothing is
    evicted, and a file that cannot be used raises :class:`~crossrank.ConfigurationError` naming
    it (an evaluation's results live in this file, so it is not skipped with a warning). Each
    write is committed at once, so a killed run keeps every finished batch.

    Args:
        root: Cache folder (see :func:`default_cache_dir`); created if missing.
        settings: The scorer settings (see :func:`scorer_settings`); :func:`scorer_scope`
            makes them the scope.

    Raises:
        ConfigurationError: ``root`` cannot be created or is not a folder.

    Example:
        >>> cache = EvalScoreCache(tmp, {"model": "m@1", "max_length": 512})  # doctest: +SKIP
        >>> cache.put_many({cache.key("q", "p"): 1.5})  # doctest: +SKIP
    """

    def __init__(self, root: str | Path, settings: Mapping[str, Any]) -> None:
        folder = Path(root).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"evaluation cache folder {folder} cannot be created ({exc.strerror or exc})") from None
        self.settings = dict(settings)
        self.folder = folder
        super().__init__(SqliteScoreCache(folder / EVAL_CACHE_FILE, max_entries=None, strict=True), scorer_scope(self.settings))

    @property
    def file(self) -> Path:
        """The SQLite file."""
        return self.folder / EVAL_CACHE_FILE

    def missing(self, keys: Iterable[str]) -> list[str]:
        """Those ``keys`` (in order, each once) that have no score yet."""
        unique = list(dict.fromkeys(keys))
        found = self.get_many(unique)
        return [k for k in unique if k not in found]
