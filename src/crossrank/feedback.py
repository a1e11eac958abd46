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
import math
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from crossrank.errors import InvalidInputError, InvalidInputTypeError, describe
from crossrank.results import RerankResult, ScoredDocument

__all__ = ["FeedbackLog", "Impression", "export_interactions", "document_id", "ID_FIELDS"]

ID_FIELDS = ("id", "doc_id", "document_id")
_SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
            "scores": [d["score"] for d in self.documents],
            "model": self.model,
            "served_by": self.served_by,
            "time": self.time,
        }


class FeedbackLog:
    """Appends impressions and uses to a JSONL or SQLite file.

    Args:
        path: ``*.jsonl`` or ``*.sqlite``/``*.sqlite3``/``*.db``; created on first write.
        store_text: Also keep query and document text (off: digests and ids only).

    Example:
        >>> log = FeedbackLog("/tmp/feedback.sqlite")  # doctest: +SKIP
        >>> impression = log.record_shown("red apples", result, query_id="session-1/turn-3")  # doctest: +SKIP
        >>> log.record_used(impression, "doc-42", kind="citation")  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, *, store_text: bool = False) -> None:
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise InvalidInputTypeError(f"path must be a file path; received {describe(path)}")
        if not isinstance(store_text, bool):
            raise InvalidInputTypeError(f"store_text must be True or False; received {describe(store_text)}")
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
        self._lock = threading.Lock()

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
            query: The query the documents were ranked for.
            shown: A :class:`~crossrank.RerankResult` (its model and serving path are recorded)
                or a list of :class:`~crossrank.ScoredDocument`.
            query_id: The application's own id for this query or turn.
            model: Model identifier, when ``shown`` is not a result.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError(f"query must be a non-empty string; received {describe(query)}")
        if query_id is not None and (not isinstance(query_id, str) or not query_id):
            raise InvalidInputTypeError(f"query_id must be a non-empty string or None; received {describe(query_id)}")
        if isinstance(shown, (str, bytes)) or not isinstance(shown, Sequence):
            raise InvalidInputTypeError(f"shown must be a RerankResult or a list of ScoredDocument; received {describe(shown)}")
        documents = []
        for position, document in enumerate(shown):
            if not isinstance(document, ScoredDocument):
                raise InvalidInputTypeError(f"shown[{position}] must be a ScoredDocument; received {describe(document)}")
            entry: dict[str, Any] = {
                "id": document_id(document),
                "hash": _digest(document.text),
                "rank": document.rank or position + 1,
                "index": document.index,
                "score": _finite_or_none(document.score),
                "raw_score": _finite_or_none(document.raw_score),
            }
            if self.store_text:
                entry["text"] = document.text
            documents.append(entry)
        stats = shown.stats if isinstance(shown, RerankResult) else None
        impression = {
            "event": "shown",
            "impression": uuid.uuid4().hex,
            "time": _now(),
            "query_hash": _digest(query),
            "query": query if self.store_text else None,
            "query_id": query_id,
            "model": model or (stats.model if stats is not None else ""),
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
            reference: dict[str, Any] = {"document": document_id(document)}
        elif isinstance(document, str) and document:
            reference = {"document": document}
        elif isinstance(document, int) and not isinstance(document, bool) and document >= 0:
            reference = {"index": document}
        else:
            raise InvalidInputTypeError(
                f"document must be a ScoredDocument, a document id or an input index; received {describe(document)}"
            )
        self._append({"event": "used", "impression": impression, "kind": kind.strip(), "time": _now(), **reference})

    def _append(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.format == "jsonl":
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(event, ensure_ascii=False) + "\n")
                return
            connection = self._connect()
            try:
                with connection:
                    if event["event"] == "shown":
                        connection.execute(
                            "INSERT INTO impressions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                event["impression"],
                                event["time"],
                                event["query_hash"],
                                event["query"],
                                event["query_id"],
                                event["model"],
                                event["served_by"],
                                json.dumps(event["documents"], ensure_ascii=False),
                            ),
                        )
                    else:
                        connection.execute(
                            "INSERT INTO uses VALUES (?, ?, ?, ?, ?)",
                            (event["impression"], event.get("document"), event.get("index"), event["kind"], event["time"]),
                        )
            finally:
                connection.close()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30.0)
        connection.execute(
            "CREATE TABLE IF NOT EXISTS impressions (id TEXT PRIMARY KEY, time TEXT, query_hash TEXT, "
            "query TEXT, query_id TEXT, model TEXT, served_by TEXT, documents TEXT)"
        )
        connection.execute(
            "CREATE TABLE IF NOT EXISTS uses (impression TEXT, document TEXT, document_index INTEGER, "
            "kind TEXT, time TEXT)"
        )
        return connection

    # ------------------------------------------------------------------ reading
    def impressions(self) -> list[Impression]:
        """Every impression with its uses, oldest first."""
        if not self.path.is_file():
            raise InvalidInputError(f"feedback log not found: {self.path}")
        shown, uses = self._read_jsonl() if self.format == "jsonl" else self._read_sqlite()
        by_id = {impression.id: impression for impression in shown}
        for use in uses:
            impression = by_id.get(use["impression"])
            if impression is None:
                continue  # a use of an impression that is not in this log cannot be exported
            if use.get("document") is None:
                match = [d["id"] for d in impression.documents if d["index"] == use.get("index")]
                if not match:
                    continue
                use = {**use, "document": match[0]}
            impression.used.append(use)
        return shown

    def _read_jsonl(self) -> tuple[list[Impression], list[dict[str, Any]]]:
        shown: list[Impression] = []
        uses: list[dict[str, Any]] = []
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidInputError(f"{self.path} line {number}: not JSON ({exc.msg})") from None
                if event.get("event") == "shown":
                    shown.append(
                        Impression(
                            id=event["impression"],
                            time=event["time"],
                            query_hash=event["query_hash"],
                            query=event.get("query"),
                            query_id=event.get("query_id"),
                            model=event.get("model", ""),
                            served_by=event.get("served_by", ""),
                            documents=event["documents"],
                        )
                    )
                elif event.get("event") == "used":
                    uses.append(event)
                else:
                    raise InvalidInputError(f"{self.path} line {number}: expected a 'shown' or 'used' event")
        return shown, uses

    def _read_sqlite(self) -> tuple[list[Impression], list[dict[str, Any]]]:
        connection = self._connect()
        try:
            rows = connection.execute(
                "SELECT id, time, query_hash, query, query_id, model, served_by, documents FROM impressions "
                "ORDER BY time, rowid"
            ).fetchall()
            use_rows = connection.execute(
                "SELECT impression, document, document_index, kind, time FROM uses ORDER BY time, rowid"
            ).fetchall()
        finally:
            connection.close()
        shown = [
            Impression(
                id=r[0], time=r[1], query_hash=r[2], query=r[3], query_id=r[4], model=r[5], served_by=r[6],
                documents=json.loads(r[7]),
            )
            for r in rows
        ]
        uses = [{"impression": r[0], "document": r[1], "index": r[2], "kind": r[3], "time": r[4]} for r in use_rows]
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
        output.write(json.dumps(row, ensure_ascii=False) + "\n")
        written += 1
    return written


def _impressions_with_kinds(log: FeedbackLog, kinds: Sequence[str] | None) -> Iterator[Impression]:
    for impression in log.impressions():
        if kinds is not None:
            impression.used = [use for use in impression.used if use["kind"] in kinds]
        yield impression
