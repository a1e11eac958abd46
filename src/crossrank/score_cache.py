"""Score caches: skip scoring a (query, document) pair the same scorer has scored before.

Conversations re-rank many of the same candidates turn after turn, tuning runs re-score the
same pairs trial after trial, and ``crossrank eval`` re-reads thousands of pairs run after run.
All of them use this one family:

* :func:`pair_key` is the only cache key: a SHA-256 over the *scope* (the identity of the scorer:
  everything besides the pair that changes a raw score), the query and a SHA-256 of the document.
* :class:`ScoreCache` is the storage interface, keyed by ``(scope, key)``, holding raw logits.
  :class:`MemoryScoreCache` is an in-process LRU bounded by ``max_entries``;
  :class:`SqliteScoreCache` is a file shared by threads and processes (LRU-bounded, or unbounded
  with ``max_entries=None``).
* :class:`ScopedScoreCache` is one scope of a store: the entries of a single scorer, as
  ``crossrank eval`` uses them (see :mod:`crossrank.evaluation.cache`).

A different scorer (model, weights, backend, token limits, long-document settings) has a
different scope, so it never reads another one's entries: changing any of them invalidates the
cache without any bookkeeping (:meth:`ScoreCache.clear` frees the space). No store keeps query
or document text: keys are SHA-256 digests.

A cache is an optimization. A SQLite file that cannot be used (corrupt, unreadable, not a
score cache, its folder removed) logs one WARNING naming the file and reranking goes on
uncached; a file deleted or replaced while in use is reopened (a new, empty cache) after a
WARNING. A path that can never work (a folder, or a file whose folder does not exist) is
refused when the cache is built.

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
import logging
import os
import sqlite3
import stat
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from crossrank.errors import ConfigurationError, describe

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "MemoryScoreCache",
    "ScopedScoreCache",
    "ScoreCache",
    "SqliteScoreCache",
    "cache_from_spec",
    "document_digest",
    "pair_key",
    "scope_digest",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_SQLITE_MAX_ENTRIES = 1_000_000
_T = TypeVar("_T")


def scope_digest(parts: Mapping[str, Any]) -> str:
    """A digest of everything besides the pair that determines a score (model, settings...).

    Example:
        >>> scope_digest({"model": "m@1"}) == scope_digest({"model": "m@1"})
        True
    """
    return hashlib.sha256(json.dumps(dict(parts), sort_keys=True, default=str).encode("utf-8")).hexdigest()


def document_digest(text: str) -> str:
    """The SHA-256 of a document's UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def pair_key(scope: str, query: str, text: str) -> str:
    """The cache key of one (query, document) pair under one scope.

    The query is length-prefixed, so no (query, document) split of the same characters collides.

    Example:
        >>> pair_key("s", "q", "d") == pair_key("s", "q", "d") != pair_key("t", "q", "d")
        True
    """
    material = f"{scope}\x00{len(query)}:{query}\x00{document_digest(text)}"
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def _check_max_entries(max_entries: object, *, unbounded: bool = False) -> int | None:
    if max_entries is None and unbounded:
        return None
    if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
        expected = "an int >= 1 or None (unbounded)" if unbounded else "an int >= 1"
        raise ConfigurationError(f"max_entries must be {expected}; received {describe(max_entries)}")
    return max_entries


class ScoreCache(ABC):
    """Maps ``(scope, pair key)`` to raw logits. Implementations are thread-safe and bounded."""

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

    def count(self, scope: str | None = None) -> int:
        """How many entries the cache holds (only ``scope``'s, if given)."""
        if scope is None:
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} cannot count the entries of one scope")

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
            while len(self._entries) > self.max_entries:  # type: ignore[operator]
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

    def count(self, scope: str | None = None) -> int:
        with self._lock:
            if scope is None:
                return len(self._entries)
            return sum(1 for k in self._entries if k[0] == scope)

    def __len__(self) -> int:
        return len(self._entries)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_entries": self.max_entries}

    def __repr__(self) -> str:
        return f"MemoryScoreCache({len(self)}/{self.max_entries} entries)"


def check_cache_file_path(path: Path) -> None:
    """Refuse an SQLite cache path that can never work: a folder, a non-file, a missing folder.

    crossrank does not create folders for a cache file: a path whose folder does not exist is
    more often a typo or a deployment step not yet run than a wish for new folders.

    Raises:
        ConfigurationError: naming the path and what is wrong with it.
    """
    if path.is_dir():
        raise ConfigurationError(
            f"score cache {path} is a folder; expected the path of an SQLite file, e.g. {path / 'scores.sqlite'}"
        )
    if path.exists() and not path.is_file():
        raise ConfigurationError(f"score cache {path} exists but is not a regular file; expected an SQLite file path")
    folder = path.parent
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise ConfigurationError(
            f"score cache {path}: its folder {folder} {problem}; create the folder first or choose another path "
            "(crossrank does not create folders for a cache file)"
        )


def _file_state(path: Path) -> tuple[Any, ...] | None:
    """What a path is now (device, inode, type, size, modification time), or None if absent."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns)


class SqliteScoreCache(ScoreCache):
    """An LRU cache in an SQLite file, shared by threads and processes.

    The file holds only digests and logits. The connection opens on first use, so the
    constructor stays cheap; ``max_entries`` bounds the table (least recently used first out),
    or ``None`` leaves it unbounded (``crossrank eval``'s cache, which never evicts).

    The cache never stops reranking: if the file cannot be used (corrupt, unreadable, another
    application's database, its folder removed), one WARNING names the file and the cache reads
    as empty and drops writes until the file changes (then it is tried again); a file deleted or
    replaced while in use is reopened after a WARNING. With ``strict=True`` these failures raise
    :class:`~crossrank.ConfigurationError` instead (for callers whose results live in the file).
    :meth:`clear`, :meth:`count` and ``len()`` always raise on a file that cannot be used: their
    answer would otherwise be wrong.

    Args:
        path: The SQLite file; its folder must exist (it is not created).
        max_entries: Bound on the number of entries, or None for no bound.
        strict: Raise instead of warning and going on uncached.

    Raises:
        ConfigurationError: ``path`` is a folder, not a regular file, or its folder does not exist.

    Example:
        >>> cache = SqliteScoreCache("/tmp/crossrank-scores.sqlite")  # doctest: +SKIP
        >>> reranker = Reranker(cache=cache)  # doctest: +SKIP
    """

    kind = "sqlite"
    _TABLES = frozenset({"scores"})

    def __init__(self, path: str | Path, max_entries: int | None = DEFAULT_SQLITE_MAX_ENTRIES, *, strict: bool = False) -> None:
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise ConfigurationError(f"path must be a file path; received {describe(path)}")
        if not isinstance(strict, bool):
            raise ConfigurationError(f"strict must be True or False; received {describe(strict)}")
        self.path = Path(path).expanduser()
        self.max_entries = _check_max_entries(max_entries, unbounded=True)
        self.strict = strict
        check_cache_file_path(self.path)
        self._connection: sqlite3.Connection | None = None
        self._opened: tuple[Any, ...] | None = None  # (device, inode) of the file the connection has open
        self._failed_state: tuple[Any, ...] | None = None  # what the path was when it last failed
        self._failing = False
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ connection
    def _open(self) -> sqlite3.Connection:
        check_cache_file_path(self.path)
        connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            # A cache may lose its last writes on power loss; it must not wait on a disk flush per call.
            connection.execute("PRAGMA synchronous=NORMAL")
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            foreign = sorted(t for t in tables - self._TABLES if not t.startswith("sqlite_"))
            if foreign:
                raise sqlite3.DatabaseError(f"it is another application's database (tables {foreign[:5]}), not a score cache")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS scores ("
                "scope TEXT NOT NULL, key TEXT NOT NULL, logit REAL NOT NULL, used INTEGER NOT NULL, "
                "PRIMARY KEY (scope, key))"
            )
            connection.execute("CREATE INDEX IF NOT EXISTS scores_used ON scores(used)")
            connection.execute("SELECT scope, key, logit, used FROM scores LIMIT 1").fetchall()
        except BaseException:
            connection.close()
            raise
        return connection

    def _drop_connection(self) -> None:
        connection, self._connection, self._opened = self._connection, None, None
        if connection is not None:
            try:
                connection.close()
            except sqlite3.Error:
                pass  # closing a connection to a broken or vanished file; nothing is left to release

    def _fail(self, error: BaseException, *, always: bool = False, vanished: bool = False) -> None:
        """Record a failure: raise (strict, or ``always``) or log one WARNING per broken spell."""
        self._drop_connection()
        self._failed_state = _file_state(self.path) or (None, self.path.parent.is_dir())
        reason = str(error) if isinstance(error, ConfigurationError) else f"{type(error).__name__}: {error}"
        if vanished:
            reason = f"it was deleted or replaced while in use, and reopening it failed: {reason}"
        if self.strict or always:
            raise ConfigurationError(f"score cache {self.path} cannot be used ({reason})") from None
        if not self._failing:
            logger.warning(
                "score cache %s cannot be used (%s); scoring goes on without it until the file changes", self.path, reason
            )
        self._failing = True

    def _usable(self, *, required: bool) -> sqlite3.Connection | None:
        """The open connection, reopened if the file was deleted or replaced; None while the file is broken."""
        vanished = False
        if self._connection is not None:
            now = _file_state(self.path)
            if now is not None and now[:2] == self._opened:
                return self._connection
            vanished = True
            self._drop_connection()
        elif self._failed_state is not None and not required and not self.strict:
            if (_file_state(self.path) or (None, self.path.parent.is_dir())) == self._failed_state:
                return None  # still broken the same way: do not retry on every call
        try:
            connection = self._open()
        except (sqlite3.Error, OSError, ConfigurationError) as exc:
            self._fail(exc, always=required, vanished=vanished)
            return None
        if vanished:
            logger.warning("score cache %s was deleted or replaced while in use; opened it anew (earlier entries are gone)", self.path)
        state = _file_state(self.path)
        self._connection, self._opened = connection, state[:2] if state is not None else None
        return connection

    def _run(self, action: Callable[[sqlite3.Connection], _T], default: _T, *, required: bool = False) -> _T:
        with self._lock:
            connection = self._usable(required=required)
            if connection is None:
                return default
            try:
                result = action(connection)
            except (sqlite3.Error, OSError) as exc:
                self._fail(exc, always=required)
                return default
            if self._failing:
                logger.info("score cache %s works again", self.path)
            self._failing = False
            self._failed_state = None
            return result

    # ------------------------------------------------------------------ operations
    def get_many(self, scope: str, keys: Iterable[str]) -> dict[str, float]:
        unique = list(dict.fromkeys(keys))

        def read(connection: sqlite3.Connection) -> dict[str, float]:
            found: dict[str, float] = {}
            for start in range(0, len(unique), 500):  # stay under SQLite's bound-parameter limit
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT key, logit FROM scores WHERE scope = ? AND key IN ({marks})", [scope, *chunk]
                ).fetchall()
                found.update(rows)
            if found and self.max_entries is not None:  # recency matters only when something is evicted
                now = time.time_ns()
                connection.executemany(
                    "UPDATE scores SET used = ? WHERE scope = ? AND key = ?", [(now, scope, k) for k in found]
                )
            return found

        if not unique:
            return {}
        return self._run(read, {})

    def put_many(self, scope: str, items: Mapping[str, float]) -> None:
        if not items:
            return
        rows = [(scope, k, float(v), time.time_ns()) for k, v in items.items()]

        def write(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany("INSERT OR REPLACE INTO scores (scope, key, logit, used) VALUES (?, ?, ?, ?)", rows)
                if self.max_entries is not None:
                    (count,) = connection.execute("SELECT COUNT(*) FROM scores").fetchone()
                    if count > self.max_entries:
                        connection.execute(
                            "DELETE FROM scores WHERE rowid IN (SELECT rowid FROM scores ORDER BY used LIMIT ?)",
                            (count - self.max_entries,),
                        )
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    try:
                        connection.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the transaction is gone with the failure that ended it; the error below says why
                raise

        self._run(write, None)

    def clear(self, scope: str | None = None) -> int:
        def delete(connection: sqlite3.Connection) -> int:
            if scope is None:
                return connection.execute("DELETE FROM scores").rowcount
            return connection.execute("DELETE FROM scores WHERE scope = ?", (scope,)).rowcount

        return self._run(delete, 0, required=True)

    def count(self, scope: str | None = None) -> int:
        def read(connection: sqlite3.Connection) -> int:
            if scope is None:
                return int(connection.execute("SELECT COUNT(*) FROM scores").fetchone()[0])
            return int(connection.execute("SELECT COUNT(*) FROM scores WHERE scope = ?", (scope,)).fetchone()[0])

        return self._run(read, 0, required=True)

    def __len__(self) -> int:
        return self.count()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "path": str(self.path), "max_entries": self.max_entries}
        if self.strict:
            data["strict"] = True
        return data

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    def __repr__(self) -> str:
        return f"SqliteScoreCache({str(self.path)!r}, max_entries={self.max_entries})"


class ScopedScoreCache:
    """One scope of a :class:`ScoreCache`: the entries of a single scorer.

    Args:
        store: Where the entries live.
        scope: The scorer's identity (e.g. :func:`scope_digest` of its settings, or an
            engine's scorer id).

    Example:
        >>> cache = ScopedScoreCache(MemoryScoreCache(), "my-scorer")
        >>> cache.put_many({cache.key("q", "d"): 1.5})
        >>> cache.get_many([cache.key("q", "d"), cache.key("q", "other")])  # doctest: +ELLIPSIS
        {'...': 1.5}
    """

    def __init__(self, store: ScoreCache, scope: str) -> None:
        if not isinstance(store, ScoreCache):
            raise ConfigurationError(f"store must be a ScoreCache; received {describe(store)}")
        if not isinstance(scope, str) or not scope:
            raise ConfigurationError(f"scope must be a non-empty string; received {describe(scope)}")
        self.store = store
        self.scope = scope

    def key(self, query: str, text: str) -> str:
        """The key of one pair in this scope (:func:`pair_key`)."""
        return pair_key(self.scope, query, text)

    def get_many(self, keys: Iterable[str]) -> dict[str, float]:
        """The cached logits of those ``keys`` that are present."""
        return self.store.get_many(self.scope, keys)

    def put_many(self, items: Mapping[str, float]) -> None:
        """Store logits under this scope."""
        self.store.put_many(self.scope, items)

    def clear(self) -> int:
        """Remove this scope's entries; returns how many were removed."""
        return self.store.clear(self.scope)

    def __len__(self) -> int:
        return self.store.count(self.scope)

    def close(self) -> None:
        self.store.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r}, scope={self.scope[:12]!r}...)"


def cache_from_spec(spec: object) -> ScoreCache | None:
    """Build a cache from a setting or a :meth:`ScoreCache.to_dict` mapping.

    Accepted: ``None``/``False`` (no cache), ``True`` or ``"memory"`` (in-memory LRU),
    ``"memory:N"`` (at most N entries), a path ending in ``.sqlite``/``.sqlite3``/``.db``
    (an SQLite file, whose folder must exist), a mapping with ``kind`` (``"memory"`` or
    ``"sqlite"``), or a :class:`ScoreCache` (returned as is).

    Raises:
        ConfigurationError: an unknown spec, or an SQLite path that can never work.
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
