"""Score caches: skip scoring a (query, document) pair the same model has scored before.

Conversations re-rank many of the same candidates turn after turn, and tuning runs re-score the
same pairs trial after trial. A cache maps a key to the model's raw logit. The key covers
everything that changes a score: the model (name, revision and a fingerprint of its weight
files), the backend and device, the calibrator (a hash of its JSON), ``max_length``,
``max_query_length``, the long-document settings, the query and a hash of the document. A
different model or calibrator therefore never reads another one's entries: changing either
invalidates the cache without any bookkeeping (:meth:`ScoreCache.clear` frees the space).

Two stores are provided: :class:`MemoryScoreCache` (an in-process LRU bounded by
``max_entries``) and :class:`SqliteScoreCache` (a file shared by processes, also LRU-bounded).
Neither stores query or document text: keys are SHA-256 digests.

Example:
    >>> from crossrank import Reranker
    >>> from crossrank.score_cache import MemoryScoreCache
    >>> reranker = Reranker(cache=MemoryScoreCache(max_entries=10_000))
    >>> first = reranker.rerank("q", ["a", "b"])  # doctest: +SKIP
    >>> again = reranker.rerank("q", ["a", "b"])  # doctest: +SKIP
    >>> again.stats.cache_hits  # doctest: +SKIP
    2
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from crossrank.errors import ConfigurationError, describe

__all__ = [
    "ScoreCache",
    "MemoryScoreCache",
    "SqliteScoreCache",
    "cache_from_spec",
    "scope_digest",
    "pair_key",
    "DEFAULT_MAX_ENTRIES",
]

DEFAULT_MAX_ENTRIES = 100_000


def scope_digest(parts: Mapping[str, Any]) -> str:
    """A digest of everything besides the pair that determines a score (model, calibrator, settings)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def document_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def pair_key(scope: str, query: str, text: str) -> str:
    """The cache key of one pair under one scope."""
    material = f"{scope}\x00{len(query)}:{query}\x00{document_digest(text)}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def _check_max_entries(max_entries: object) -> int:
    if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
        raise ConfigurationError(f"max_entries must be an int >= 1; received {describe(max_entries)}")
    return max_entries


class ScoreCache(ABC):
    """Maps pair keys to raw logits. Implementations are thread-safe and bounded."""

    kind: str

    @abstractmethod
    def get_many(self, scope: str, keys: Iterable[str]) -> dict[str, float]:
        """The cached logits of those ``keys`` that are present (and mark them recently used)."""

    @abstractmethod
    def put_many(self, scope: str, items: Mapping[str, float]) -> None:
        """Store logits, evicting the least recently used entries beyond the bound."""

    @abstractmethod
    def clear(self, scope: str | None = None) -> int:
        """Remove every entry (or only ``scope``'s); returns how many were removed."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The cache's configuration (not its contents), for :func:`cache_from_spec`."""

    def close(self) -> None:
        """Release resources; the default has none."""


class MemoryScoreCache(ScoreCache):
    """An in-process LRU cache of at most ``max_entries`` logits.

    Example:
        >>> cache = MemoryScoreCache(max_entries=2)
        >>> cache.put_many("scope", {"a": 1.0, "b": 2.0, "c": 3.0})
        >>> sorted(cache.get_many("scope", ["a", "b", "c"]))
        ['b', 'c']
    """

    kind = "memory"

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = _check_max_entries(max_entries)
        self._entries: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, scope: str, keys: Iterable[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        with self._lock:
            for key in keys:
                value = self._entries.get((scope, key))
                if value is not None:
                    self._entries.move_to_end((scope, key))
                    found[key] = value
        return found

    def put_many(self, scope: str, items: Mapping[str, float]) -> None:
        with self._lock:
            for key, value in items.items():
                self._entries[(scope, key)] = float(value)
                self._entries.move_to_end((scope, key))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self, scope: str | None = None) -> int:
        with self._lock:
            if scope is None:
                removed = len(self._entries)
                self._entries.clear()
                return removed
            doomed = [k for k in self._entries if k[0] == scope]
            for k in doomed:
                del self._entries[k]
            return len(doomed)

    def __len__(self) -> int:
        return len(self._entries)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_entries": self.max_entries}

    def __repr__(self) -> str:
        return f"MemoryScoreCache({len(self)}/{self.max_entries} entries)"


class SqliteScoreCache(ScoreCache):
    """An LRU cache in an SQLite file, shared by threads and processes.

    The file holds only digests and logits. The connection opens on first use, so the
    constructor stays cheap; ``max_entries`` bounds the table (least recently used first out).

    Example:
        >>> cache = SqliteScoreCache("/tmp/crossrank-scores.sqlite")  # doctest: +SKIP
        >>> reranker = Reranker(cache=cache)  # doctest: +SKIP
    """

    kind = "sqlite"

    def __init__(self, path: str | Path, max_entries: int = 1_000_000) -> None:
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise ConfigurationError(f"path must be a file path; received {describe(path)}")
        self.path = Path(path).expanduser()
        self.max_entries = _check_max_entries(max_entries)
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            # A cache may lose its last writes on power loss; it must not wait on a disk flush per call.
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS scores ("
                "scope TEXT NOT NULL, key TEXT NOT NULL, logit REAL NOT NULL, used INTEGER NOT NULL, "
                "PRIMARY KEY (scope, key))"
            )
            connection.execute("CREATE INDEX IF NOT EXISTS scores_used ON scores(used)")
            self._connection = connection
        return self._connection

    def get_many(self, scope: str, keys: Iterable[str]) -> dict[str, float]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, float] = {}
        with self._lock:
            connection = self._connect()
            for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT key, logit FROM scores WHERE scope = ? AND key IN ({marks})", [scope, *chunk]
                ).fetchall()
                found.update(rows)
            if found:
                now = time.time_ns()
                connection.executemany(
                    "UPDATE scores SET used = ? WHERE scope = ? AND key = ?", [(now, scope, k) for k in found]
                )
        return found

    def put_many(self, scope: str, items: Mapping[str, float]) -> None:
        if not items:
            return
        now = time.time_ns()
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(
                    "INSERT OR REPLACE INTO scores (scope, key, logit, used) VALUES (?, ?, ?, ?)",
                    [(scope, k, float(v), now) for k, v in items.items()],
                )
                (count,) = connection.execute("SELECT COUNT(*) FROM scores").fetchone()
                if count > self.max_entries:
                    connection.execute(
                        "DELETE FROM scores WHERE rowid IN (SELECT rowid FROM scores ORDER BY used LIMIT ?)",
                        (count - self.max_entries,),
                    )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def clear(self, scope: str | None = None) -> int:
        with self._lock:
            connection = self._connect()
            if scope is None:
                cursor = connection.execute("DELETE FROM scores")
            else:
                cursor = connection.execute("DELETE FROM scores WHERE scope = ?", (scope,))
            return cursor.rowcount

    def __len__(self) -> int:
        with self._lock:
            return int(self._connect().execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "max_entries": self.max_entries}

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __repr__(self) -> str:
        return f"SqliteScoreCache({str(self.path)!r}, max_entries={self.max_entries})"


def cache_from_spec(spec: object) -> ScoreCache | None:
    """Build a cache from a setting or a :meth:`ScoreCache.to_dict` mapping.

    Accepted: ``None``/``False`` (no cache), ``True`` or ``"memory"`` (in-memory LRU),
    ``"memory:N"`` (at most N entries), a path ending in ``.sqlite``/``.sqlite3``/``.db``
    (an SQLite file), a mapping with ``kind`` (``"memory"`` or ``"sqlite"``), or a
    :class:`ScoreCache` (returned as is).
    """
    if spec is None or spec is False:
        return None
    if isinstance(spec, ScoreCache):
        return spec
    if spec is True:
        return MemoryScoreCache()
    if isinstance(spec, Mapping):
        options = dict(spec)
        kind = options.pop("kind", None)
        try:
            if kind == "memory":
                return MemoryScoreCache(**options)
            if kind == "sqlite":
                return SqliteScoreCache(**options)
        except TypeError as exc:
            raise ConfigurationError(f"invalid score cache configuration {spec!r}: {exc}") from None
        raise ConfigurationError(f"score cache kind must be 'memory' or 'sqlite'; received {kind!r}")
    if isinstance(spec, (str, Path)):
        text = str(spec).strip()
        if text == "memory":
            return MemoryScoreCache()
        if text.startswith("memory:"):
            try:
                return MemoryScoreCache(int(text.split(":", 1)[1]))
            except ValueError:
                raise ConfigurationError(f"cache 'memory:N' needs an integer N; received {text!r}") from None
        if Path(text).suffix.lower() in (".sqlite", ".sqlite3", ".db"):
            return SqliteScoreCache(text)
        raise ConfigurationError(
            f"cache must be 'memory', 'memory:N' or a path ending in .sqlite/.sqlite3/.db; received {text!r}"
        )
    raise ConfigurationError(f"cache must be a ScoreCache, a spec string or None; received {describe(spec)}")
