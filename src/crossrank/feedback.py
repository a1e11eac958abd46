"""Feedback capture: what was shown for a query and what the user used, for later training.

A :class:`FeedbackLog` appends to a local JSONL file (``.jsonl``) or an SQLite file
(``.sqlite``/``.sqlite3``/``.db``). Each *impression* records the ranked documents with their
scores, the model that produced them (``name@revision``) and the path that served them
(primary or fallback). Each *use* (a click, a vote, a citation kept in the answer) refers to
an impression and a document.

By default no text is stored: a query is kept as a SHA-256 digest (plus an optional
application ``query_id``) and a document as its id (the ``id``, ``doc_id`` or
``document_id`` metadata field) or, without one, ``sha256:`` + a digest of its text. Pass
``store_text=True`` to keep query and document text as well.

:func:`export_interactions` (``crossrank feedback export``) turns a log into the trainer's
interaction-log format: one JSON object per impression with ``query``, ``shown`` (document
ids or texts in ranked order) and ``clicked`` (those the user used), plus ``query_id``,
``scores``, ``model``, ``served_by`` and ``time``.

A log survives a kill at any byte. A JSONL record is one ``write`` of a complete line; a record
left torn by a killed writer never swallows the next one (a writer that finds the file without
a final newline starts its record on a fresh line), and readers skip a corrupt record, count
it in :attr:`FeedbackLog.corrupt_records` and log a warning instead of failing the export. An
SQLite log keeps one connection per :class:`FeedbackLog` (write-ahead log, statements compiled
once), shared by threads under a lock; several processes may write to the same file. Records
reach the operating system before ``record_*`` returns, which survives a killed process;
``durable=True`` also waits for the disk on every record, which survives a power cut.

Example:
    >>> from crossrank.feedback import FeedbackLog
    >>> log = FeedbackLog("feedback.jsonl")  # doctest: +SKIP
    >>> result = reranker.rerank(query, documents)  # doctest: +SKIP
    >>> impression = log.record_shown(query, result)  # doctest: +SKIP
    >>> log.record_used(impression, result[0], kind="click")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from crossrank.documents import clean_text, parse_json, validate_query
from crossrank.errors import ConfigurationError, InvalidInputError, InvalidInputTypeError, describe
from crossrank.results import RerankResult, ScoredDocument

__all__ = ["FeedbackLog", "Impression", "export_interactions", "document_id", "ID_FIELDS"]

ID_FIELDS = ("id", "doc_id", "document_id")
_SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS impressions (id TEXT PRIMARY KEY, time TEXT, query_hash TEXT, "
    "query TEXT, query_id TEXT, model TEXT, served_by TEXT, documents TEXT)",
    "CREATE TABLE IF NOT EXISTS uses (impression TEXT, document TEXT, document_index INTEGER, kind TEXT, time TEXT)",
)
_INSERT_SHOWN = "INSERT INTO impressions VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_USED = "INSERT INTO uses VALUES (?, ?, ?, ?, ?)"
_SELECT_SHOWN = (
    "SELECT rowid, id, time, query_hash, query, query_id, model, served_by, documents FROM impressions ORDER BY time, rowid"
)
_SELECT_USED = "SELECT rowid, impression, document, document_index, kind, time FROM uses ORDER BY time, rowid"

logger = logging.getLogger(__name__)


def _digest(text: str) -> str:
    # surrogatepass: a lone surrogate in hand-built text hashes instead of failing.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def document_id(document: ScoredDocument) -> str:
    """The id a log records for a document: its metadata id, else a digest of its text."""
    for name in ID_FIELDS:
        value = document.metadata.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return "sha256:" + _digest(document.text)[:32]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass
class Impression:
    """One recorded impression and the uses that refer to it."""

    id: str
    time: str
    query_hash: str
    query: str | None
    query_id: str | None
    model: str
    served_by: str
    documents: list[dict[str, Any]]
    used: list[dict[str, Any]] = field(default_factory=list)

    @property
    def query_key(self) -> str:
        """What identifies the query: the application's ``query_id``, else ``sha256:`` + its digest."""
        return self.query_id or "sha256:" + self.query_hash

    def used_ids(self, kinds: Collection[str] | None = None) -> set[str]:
        """Ids of the shown documents the user used (only uses of these ``kinds``, when given).

        Example:
            >>> impression = Impression("i", "t", "h", None, None, "m", "primary",
            ...     [{"id": "a"}, {"id": "b"}], used=[{"document": "b", "kind": "click"}])
            >>> sorted(impression.used_ids()), sorted(impression.used_ids(kinds=["citation"]))
            (['b'], [])
        """
        shown = {d["id"] for d in self.documents}
        return {
            use["document"] for use in self.used
            if use.get("document") in shown and (kinds is None or use.get("kind") in kinds)
        }

    def to_interaction(self, *, documents: str = "ids") -> dict[str, Any]:
        """The trainer's interaction-log row for this impression."""
        key = "id" if documents == "ids" else "text"
        if key == "text" and any("text" not in d for d in self.documents):
            raise InvalidInputError(
                f"impression {self.id} has no document text: it was recorded with store_text=False; "
                "export document ids instead"
            )
        by_id = {d["id"]: d for d in self.documents}
        clicked: list[str] = []
        for use in self.used:
            document = by_id.get(use["document"])
            if document is not None and document[key] not in clicked:
                clicked.append(document[key])
        return {
            "query": self.query,
            "query_id": self.query_id or "sha256:" + self.query_hash,
            "shown": [d[key] for d in self.documents],
            "clicked": clicked,
            "scores": [d.get("score") for d in self.documents],
            "model": self.model,
            "served_by": self.served_by,
            "time": self.time,
        }


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_str(event: Mapping[str, Any], key: str) -> str | None:
    value = event.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"field '{key}' must be a string or null; received {describe(value)}")
    return value


def _required_str(event: Mapping[str, Any], key: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"field '{key}' must be a non-empty string; received {describe(value)}")
    return value


def _checked_documents(documents: object) -> list[dict[str, Any]]:
    if not isinstance(documents, list):
        raise InvalidInputError(f"field 'documents' must be a list; received {describe(documents)}")
    for position, document in enumerate(documents):
        where = f"documents[{position}]"
        if not isinstance(document, dict):
            raise InvalidInputError(f"field '{where}' must be an object; received {describe(document)}")
        if not isinstance(document.get("id"), str):
            raise InvalidInputError(f"field '{where}.id' must be a string; received {describe(document.get('id'))}")
        score = document.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score)):
            raise InvalidInputError(f"field '{where}.score' must be a finite number or null; received {describe(score)}")
        if document.get("index") is not None and not _is_int(document.get("index")):
            raise InvalidInputError(f"field '{where}.index' must be an integer; received {describe(document.get('index'))}")
        if "text" in document and not isinstance(document["text"], str):
            raise InvalidInputError(f"field '{where}.text' must be a string; received {describe(document['text'])}")
    return documents


def _impression_from_event(event: Mapping[str, Any], documents: object) -> Impression:
    return Impression(
        id=_required_str(event, "impression"),
        time=_required_str(event, "time"),
        query_hash=_required_str(event, "query_hash"),
        query=_optional_str(event, "query"),
        query_id=_optional_str(event, "query_id"),
        model=_optional_str(event, "model") or "",
        served_by=_optional_str(event, "served_by") or "",
        documents=_checked_documents(documents),
    )


def _use_from_event(event: Mapping[str, Any]) -> dict[str, Any]:
    use = {
        "impression": _required_str(event, "impression"),
        "kind": _required_str(event, "kind"),
        "time": _required_str(event, "time"),
        "document": _optional_str(event, "document"),
        "index": event.get("index"),
    }
    if use["index"] is not None and not _is_int(use["index"]):
        raise InvalidInputError(f"field 'index' must be an integer or null; received {describe(use['index'])}")
    if use["document"] is None and use["index"] is None:
        raise InvalidInputError("a 'used' event needs a 'document' id or an 'index'")
    return use


class FeedbackLog:
    """Appends impressions and uses to a JSONL or SQLite file.

    Args:
        path: ``*.jsonl`` or ``*.sqlite``/``*.sqlite3``/``*.db``; created on first write.
        store_text: Also keep query and document text (off: digests and ids only).
        durable: Wait for the disk after every record (``fsync``; SQLite ``synchronous=FULL``),
            so a power cut loses nothing already recorded. Off, every record still reaches
            the operating system before ``record_*`` returns and survives a killed process.

    A log may be shared by threads; an SQLite log holds one open connection, released by
    :meth:`close` (or a ``with`` block) and opened again by the next record.

    Example:
        >>> log = FeedbackLog("/tmp/feedback.sqlite")  # doctest: +SKIP
        >>> impression = log.record_shown("red apples", result, query_id="session-1/turn-3")  # doctest: +SKIP
        >>> log.record_used(impression, "doc-42", kind="citation")  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, *, store_text: bool = False, durable: bool = False) -> None:
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise InvalidInputTypeError(f"path must be a file path; received {describe(path)}")
        if not isinstance(store_text, bool):
            raise InvalidInputTypeError(f"store_text must be True or False; received {describe(store_text)}")
        if not isinstance(durable, bool):
            raise InvalidInputTypeError(f"durable must be True or False; received {describe(durable)}")
        self.path = Path(path).expanduser()
        suffix = self.path.suffix.lower()
        if suffix == ".jsonl":
            self.format = "jsonl"
        elif suffix in _SQLITE_SUFFIXES:
            self.format = "sqlite"
        else:
            raise InvalidInputError(
                f"feedback log must end in .jsonl, .sqlite, .sqlite3 or .db; received {self.path.name}"
            )
        self.store_text = store_text
        self.durable = durable
        self.corrupt_records: list[str] = []
        """Where and why each record skipped by the last read was corrupt (``"<path> line 3: ..."``)."""
        self.unmatched_uses = 0
        """Uses skipped by the last read because their impression or document is not in the log."""
        self._lock = threading.Lock()  # writes
        self._read_lock = threading.Lock()  # reads (they update corrupt_records and unmatched_uses)
        self._connection: sqlite3.Connection | None = None
        self._opened: tuple[int, int, int] | None = None  # (process, device, inode) the connection belongs to
        self._inherited: list[sqlite3.Connection] = []

    @property
    def skipped(self) -> int:
        """How many corrupt records the last read skipped."""
        return len(self.corrupt_records)

    # ------------------------------------------------------------------ writing
    def record_shown(
        self,
        query: str,
        shown: RerankResult | Sequence[ScoredDocument],
        *,
        query_id: str | None = None,
        model: str | None = None,
    ) -> str:
        """Record the documents shown for ``query``, in the order shown; returns the impression id.

        Args:
            query: The query the documents were ranked for (at least one visible character).
            shown: A :class:`~crossrank.RerankResult` (its model and serving path are recorded)
                or a list of :class:`~crossrank.ScoredDocument`.
            query_id: The application's own id for this query or turn.
            model: Model identifier, when ``shown`` is not a result.
        """
        query = validate_query(query)
        if query_id is not None and (not isinstance(query_id, str) or not query_id):
            raise InvalidInputTypeError(f"query_id must be a non-empty string or None; received {describe(query_id)}")
        if model is not None and not isinstance(model, str):
            raise InvalidInputTypeError(f"model must be a string or None; received {describe(model)}")
        if isinstance(shown, (str, bytes)) or not isinstance(shown, Sequence):
            raise InvalidInputTypeError(f"shown must be a RerankResult or a list of ScoredDocument; received {describe(shown)}")
        documents = []
        for position, document in enumerate(shown):
            if not isinstance(document, ScoredDocument):
                raise InvalidInputTypeError(f"shown[{position}] must be a ScoredDocument; received {describe(document)}")
            entry: dict[str, Any] = {
                "id": clean_text(document_id(document)),
                "hash": _digest(document.text),
                "rank": document.rank or position + 1,
                "index": document.index,
                "score": _finite_or_none(document.score),
                "raw_score": _finite_or_none(document.raw_score),
            }
            if self.store_text:
                entry["text"] = clean_text(document.text)
            documents.append(entry)
        stats = shown.stats if isinstance(shown, RerankResult) else None
        impression = {
            "event": "shown",
            "impression": uuid.uuid4().hex,
            "time": _now(),
            "query_hash": _digest(query),
            "query": query if self.store_text else None,
            "query_id": clean_text(query_id) if query_id is not None else None,
            "model": clean_text(model or (stats.model if stats is not None else "")),
            "served_by": stats.served_by if stats is not None else "",
            "documents": documents,
        }
        self._append(impression)
        return str(impression["impression"])

    def record_used(self, impression: str, document: str | int | ScoredDocument, *, kind: str = "click") -> None:
        """Record that the user used a shown document (``kind``: ``"click"``, ``"vote"``, ``"citation"``...).

        ``document`` is a :class:`~crossrank.ScoredDocument` from the result, its id as
        recorded, or its input ``index``.
        """
        if not isinstance(impression, str) or not impression:
            raise InvalidInputTypeError(f"impression must be the id record_shown returned; received {describe(impression)}")
        if not isinstance(kind, str) or not kind.strip():
            raise InvalidInputError(f"kind must be a non-empty string such as 'click'; received {describe(kind)}")
        if isinstance(document, ScoredDocument):
            reference: dict[str, Any] = {"document": clean_text(document_id(document))}
        elif isinstance(document, str) and document:
            reference = {"document": clean_text(document)}
        elif isinstance(document, int) and not isinstance(document, bool) and document >= 0:
            reference = {"index": document}
        else:
            raise InvalidInputTypeError(
                f"document must be a ScoredDocument, a document id or an input index; received {describe(document)}"
            )
        event = {"event": "used", "impression": clean_text(impression), "kind": clean_text(kind.strip()), "time": _now(), **reference}
        self._append(event)

    def _append(self, event: dict[str, Any]) -> None:
        with self._lock:
            if self.format == "jsonl":
                self._append_line(json.dumps(event, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n")
            elif event["event"] == "shown":
                row = (
                    event["impression"], event["time"], event["query_hash"], event["query"], event["query_id"],
                    event["model"], event["served_by"], json.dumps(event["documents"], ensure_ascii=False, allow_nan=False),
                )
                self._execute(_INSERT_SHOWN, row)
            else:
                row = (event["impression"], event.get("document"), event.get("index"), event["kind"], event["time"])
                self._execute(_INSERT_USED, row)

    def _append_line(self, line: bytes) -> None:
        """Append one complete line with a single ``write``, on a fresh line even after a torn record."""
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        try:
            descriptor = os.open(self.path, flags, 0o666)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, flags, 0o666)
        try:
            if os.fstat(descriptor).st_size > 0:
                os.lseek(descriptor, -1, os.SEEK_END)
                if os.read(descriptor, 1) != b"\n":
                    # A writer was killed inside its record: end that fragment so that it stays
                    # one corrupt line (readers skip it) instead of swallowing this record.
                    line = b"\n" + line
            view = memoryview(line)
            while view:
                view = view[os.write(descriptor, view):]
            if self.durable:
                os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _execute(self, statement: str, row: tuple[Any, ...]) -> None:
        try:
            self._writer().execute(statement, row)  # the connection caches each compiled statement
        except sqlite3.Error as exc:
            self._close_connection()
            raise ConfigurationError(f"feedback log {self.path} cannot be written ({type(exc).__name__}: {exc})") from None

    def _writer(self) -> sqlite3.Connection:
        """The log's connection, opened once (again after :meth:`close`, a fork or the file being replaced)."""
        try:
            state = os.stat(self.path)
            current: tuple[int, int, int] | None = (os.getpid(), state.st_dev, state.st_ino)
        except FileNotFoundError:
            current = None
        if self._connection is not None and current == self._opened:
            return self._connection
        if self._connection is not None and self._opened is not None and self._opened[0] != os.getpid():
            # Inherited through fork: SQLite connections must not cross a fork, so it is kept
            # (closing it here could disturb the parent's locks) and never used again.
            self._inherited.append(self._connection)
            self._connection = None
        self._close_connection()  # the file was removed or replaced (log rotation): write to the new one
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            for statement in _SCHEMA:
                connection.execute(statement)
        except BaseException:
            connection.close()
            raise
        state = os.stat(self.path)
        self._connection, self._opened = connection, (os.getpid(), state.st_dev, state.st_ino)
        return connection

    def _close_connection(self) -> None:
        connection, self._connection, self._opened = self._connection, None, None
        if connection is not None:
            try:
                connection.close()
            except sqlite3.Error:
                pass  # the file is gone or broken; there is nothing left to release

    def close(self) -> None:
        """Release the SQLite connection (a JSONL log holds nothing open); the next record reopens it."""
        with self._lock:
            self._close_connection()

    def __enter__(self) -> FeedbackLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    def impressions(self) -> list[Impression]:
        """Every impression with its uses, oldest first.

        Corrupt records (a line torn by a killed writer, a record with a missing or mistyped
        field) are skipped and listed in :attr:`corrupt_records`, with one WARNING log; uses
        whose impression or document is not in the log are counted in :attr:`unmatched_uses`.

        Raises:
            InvalidInputError: The file does not exist, cannot be read as a feedback log, or
                holds corrupt records and no valid one.
        """
        with self._read_lock:
            return self._impressions()

    def _impressions(self) -> list[Impression]:
        if not self.path.is_file():
            raise InvalidInputError(f"feedback log not found: {self.path}")
        self.corrupt_records = []
        shown, uses = self._read_jsonl() if self.format == "jsonl" else self._read_sqlite()
        if self.corrupt_records and not shown and not uses:
            raise InvalidInputError(
                f"no valid feedback record in {self.path}: {len(self.corrupt_records)} corrupt "
                f"(first: {self.corrupt_records[0]})"
            )
        if self.corrupt_records:
            logger.warning(
                "%s: skipped %d corrupt feedback records (first: %s)",
                self.path, len(self.corrupt_records), self.corrupt_records[0],
            )
        by_id = {impression.id: impression for impression in shown}
        self.unmatched_uses = 0
        for use in uses:
            impression = by_id.get(use["impression"])
            if impression is not None and use.get("document") is None:
                match = [d["id"] for d in impression.documents if d.get("index") == use.get("index")]
                use = {**use, "document": match[0]} if match else use
            if impression is None or use.get("document") is None:
                self.unmatched_uses += 1  # e.g. the impression was in a log since rotated away
                continue
            impression.used.append(use)
        return shown

    def _corrupt(self, where: str, reason: object) -> None:
        self.corrupt_records.append(f"{self.path} {where}: {reason}")

    def _read_jsonl(self) -> tuple[list[Impression], list[dict[str, Any]]]:
        shown: list[Impression] = []
        uses: list[dict[str, Any]] = []
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    event = parse_json(raw.decode("utf-8"))
                    if not isinstance(event, dict):
                        raise InvalidInputError(f"expected a JSON object; received {type(event).__name__}")
                    if event.get("event") == "shown":
                        shown.append(_impression_from_event(event, event.get("documents")))
                    elif event.get("event") == "used":
                        uses.append(_use_from_event(event))
                    else:
                        raise InvalidInputError(f"expected a 'shown' or 'used' event; received {describe(event.get('event'))}")
                except UnicodeDecodeError as exc:
                    self._corrupt(f"line {number}", f"expected UTF-8 text; byte {exc.start} is {raw[exc.start:exc.start + 1]!r}")
                except InvalidInputError as exc:
                    self._corrupt(f"line {number}", exc)
        return shown, uses

    def _read_sqlite(self) -> tuple[list[Impression], list[dict[str, Any]]]:
        try:
            connection = sqlite3.connect(self.path, timeout=30.0)
        except sqlite3.Error as exc:
            raise InvalidInputError(f"cannot open feedback log {self.path}: {exc}") from None
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return [], []  # an empty database: nothing recorded yet
            if not {"impressions", "uses"} <= tables:
                raise InvalidInputError(
                    f"{self.path} is not a crossrank feedback log: it has tables {sorted(tables)[:5]}, "
                    "expected 'impressions' and 'uses'"
                )
            rows = connection.execute(_SELECT_SHOWN).fetchall()
            use_rows = connection.execute(_SELECT_USED).fetchall()
        except sqlite3.Error as exc:
            raise InvalidInputError(
                f"{self.path} is not a crossrank feedback log or is damaged ({type(exc).__name__}: {exc})"
            ) from None
        finally:
            connection.close()
        shown: list[Impression] = []
        for row in rows:
            event = dict(zip(("impression", "time", "query_hash", "query", "query_id", "model", "served_by"), row[1:8]))
            try:
                documents = parse_json(row[8]) if isinstance(row[8], str) else row[8]
                shown.append(_impression_from_event(event, documents))
            except InvalidInputError as exc:
                self._corrupt(f"impressions row {row[0]}", exc)
        uses: list[dict[str, Any]] = []
        for row in use_rows:
            event = dict(zip(("impression", "document", "index", "kind", "time"), row[1:]))
            try:
                uses.append(_use_from_event(event))
            except InvalidInputError as exc:
                self._corrupt(f"uses row {row[0]}", exc)
        return shown, uses

    def __repr__(self) -> str:
        return f"FeedbackLog({str(self.path)!r}, store_text={self.store_text})"


def export_interactions(
    log: FeedbackLog | str | Path,
    output: TextIO,
    *,
    documents: str = "ids",
    only_used: bool = False,
    kinds: Sequence[str] | None = None,
) -> int:
    """Write the trainer's interaction log (JSONL) from a feedback log; returns rows written.

    Args:
        log: A :class:`FeedbackLog` or its path.
        output: A text stream to write JSON lines to.
        documents: ``"ids"`` (default) or ``"text"`` (needs a log recorded with ``store_text=True``).
        only_used: Skip impressions where nothing was used.
        kinds: Count only these kinds of use as ``clicked`` (default: every kind).
    """
    if documents not in ("ids", "text"):
        raise InvalidInputError(f"documents must be 'ids' or 'text'; received {documents!r}")
    if not isinstance(log, FeedbackLog):
        log = FeedbackLog(log)
    written = 0
    for impression in _impressions_with_kinds(log, kinds):
        row = impression.to_interaction(documents=documents)
        if only_used and not row["clicked"]:
            continue
        output.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
        written += 1
    return written


def _impressions_with_kinds(log: FeedbackLog, kinds: Sequence[str] | None) -> Iterator[Impression]:
    for impression in log.impressions():
        if kinds is not None:
            impression.used = [use for use in impression.used if use["kind"] in kinds]
        yield impression
