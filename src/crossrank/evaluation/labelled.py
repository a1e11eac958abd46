"""Labelled queries from a pairs file or a feedback log, for fitting a calibration.

**Pairs file** (:func:`read_pairs`): JSONL (one object per line) or CSV/TSV with a header row,
with the fields ``query``, ``text`` and ``label`` and, optionally, ``query_id``. Pairs are grouped
into queries by ``query_id`` when given, else by the query text. A label is a number or a
boolean: a pair is **relevant when its label is above** ``relevant_above`` (default 0, so graded
labels 1, 2, 3... are relevant and 0 or below is not; ``true``/``false`` read as 1/0). A query
none of whose pairs is relevant counts as a no-answer query for the abstention rule.

**Feedback log** (:func:`from_feedback`): every impression that :class:`~crossrank.feedback.FeedbackLog`
recorded is a labelled query: a shown document that the user used (any kind of use, or only
the ``kinds`` given) is relevant, a shown document that was not used is not, and an impression
where nothing was used is a no-answer query. The raw scores recorded with the impression are
used as they are, from the impressions the model being calibrated scored (others, e.g. served by
a fallback, are skipped and counted). With ``rescore=True`` the
stored texts (a log recorded with ``store_text=True``) are scored again instead. Impressions
of one query (``query_id``, else the query's digest) are held out together. Users use what they
are shown first, so these labels understate the relevance of documents shown low or not read.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.documents import parse_json
from crossrank.errors import InvalidInputError, describe
from crossrank.evaluation.fitting import LabelledQueries

__all__ = ["LabelledPair", "from_feedback", "from_pairs", "read_pairs"]

_FIELDS = ("query", "text", "label", "query_id")
_SCORE_CHUNK = 512


@dataclass(frozen=True)
class LabelledPair:
    """One (query, text, label) row of a pairs file; ``line`` is where it was read."""

    query: str
    text: str
    label: float
    query_id: str | None
    line: int


def _label(value: object, where: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            return 1.0 if text == "true" else 0.0
        try:
            value = float(text)
        except ValueError:
            raise InvalidInputError(f"{where}: field 'label' must be a number or true/false; received {value!r}") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"{where}: field 'label' must be a finite number or true/false; received {describe(value)}")
    return float(value)


def _row(record: dict[str, Any], where: str, line: int) -> LabelledPair:
    unknown = sorted(set(record) - set(_FIELDS))
    if unknown:
        raise InvalidInputError(f"{where}: unknown fields {unknown}; expected {list(_FIELDS)}")
    for name in ("query", "text"):
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(f"{where}: field '{name}' must be a non-empty string; received {describe(value)}")
    if "label" not in record or record["label"] is None or record["label"] == "":
        raise InvalidInputError(f"{where}: field 'label' is missing")
    query_id = record.get("query_id")
    if query_id == "":
        query_id = None
    if query_id is not None and (isinstance(query_id, bool) or not isinstance(query_id, (str, int))):
        raise InvalidInputError(f"{where}: field 'query_id' must be a string or an integer; received {describe(query_id)}")
    return LabelledPair(record["query"], record["text"], _label(record["label"], where), None if query_id is None else str(query_id), line)


def read_pairs(path: str | Path) -> list[LabelledPair]:
    """Read a pairs file: ``.jsonl`` (one JSON object per line) or ``.csv``/``.tsv`` (header row).

    Raises:
        InvalidInputError: naming the file, the line and the field of the first bad row.
    """
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise InvalidInputError(f"pairs file not found: {file}") from None
    except IsADirectoryError:
        raise InvalidInputError(f"pairs file {file} is a directory; expected a .jsonl, .csv or .tsv file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{file}: expected UTF-8 text; byte {exc.start} is not") from None
    suffix = file.suffix.lower()
    rows: list[LabelledPair] = []
    if suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{file} line {number}"
            try:
                record = parse_json(line)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{where}: expected a JSON object ({exc})") from None
            if not isinstance(record, dict):
                raise InvalidInputError(f"{where}: expected a JSON object with query, text and label; received {describe(record)}")
            rows.append(_row(record, where, number))
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        header = reader.fieldnames or []
        missing = [name for name in ("query", "text", "label") if name not in header]
        if missing:
            raise InvalidInputError(f"{file}: the header row must name the columns query, text and label (optional query_id); "
                                    f"missing {missing}, found {header}")
        for record in reader:
            where = f"{file} line {reader.line_num}"
            if None in record:
                raise InvalidInputError(f"{where}: more cells than the header has columns")
            rows.append(_row({k: v for k, v in record.items() if k in _FIELDS}, where, reader.line_num))
    else:
        raise InvalidInputError(f"pairs file must end in .jsonl, .csv or .tsv; received {file.name}")
    if not rows:
        raise InvalidInputError(f"{file} holds no labelled pairs")
    return rows


def _score(reranker: Any, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    out = [np.asarray(reranker.score(list(pairs[i:i + _SCORE_CHUNK]), raw=True), dtype=np.float64)
           for i in range(0, len(pairs), _SCORE_CHUNK)]
    return np.concatenate(out) if out else np.zeros(0)


def from_pairs(pairs: Sequence[LabelledPair], reranker: Any, *, relevant_above: float = 0.0, source: str = "") -> LabelledQueries:
    """Score ``pairs`` with ``reranker`` (raw scores) and group them into labelled queries.

    A pair is relevant when its label is above ``relevant_above``; a query with no relevant pair
    is a no-answer query.
    """
    logits_all = _score(reranker, [(p.query, p.text) for p in pairs])
    logits: dict[str, dict[str, float]] = {}
    labels: dict[str, dict[str, float]] = {}
    grades: dict[str, dict[str, float]] = {}
    for pair, value in zip(pairs, logits_all):
        key = f"id:{pair.query_id}" if pair.query_id is not None else f"text:{pair.query}"
        doc = f"line {pair.line}"
        logits.setdefault(key, {})[doc] = float(value)
        labels.setdefault(key, {})[doc] = 1.0 if pair.label > relevant_above else 0.0
        grades.setdefault(key, {})[doc] = pair.label
    answerable = {q: any(v > 0 for v in docs.values()) for q, docs in labels.items()}
    return LabelledQueries(logits, labels, answerable=answerable, judgments=grades,
                           source=source or f"pairs file, label > {relevant_above:g} relevant")


def from_feedback(
    impressions: Sequence[Any],
    *,
    model_id: str,
    reranker: Any | None = None,
    rescore: bool = False,
    kinds: Collection[str] | None = None,
    source: str = "",
) -> LabelledQueries:
    """Labelled queries from feedback impressions (:meth:`crossrank.feedback.FeedbackLog.impressions`).

    Args:
        impressions: The log's impressions.
        model_id: ``name@revision`` of the model being calibrated. Without ``rescore``, only
            impressions it scored are used (the others, e.g. served by a fallback, are counted
            in ``extra["skipped_models"]``).
        reranker: Scores the stored texts when ``rescore`` is set.
        rescore: Score the stored query and document texts again instead of using the recorded
            raw scores (needs a log recorded with ``store_text=True``).
        kinds: Count only these kinds of use as relevant (default: every kind).

    Raises:
        InvalidInputError: every impression comes from another model, one lacks a raw score, or
            (with ``rescore``) has no stored text; naming the impression.
    """
    logits: dict[str, dict[str, float]] = {}
    labels: dict[str, dict[str, float]] = {}
    groups: dict[str, str] = {}
    pending: list[tuple[str, str, str, str]] = []  # (impression, doc key, query text, document text)
    skipped: dict[str, int] = {}
    for impression in impressions:
        if not impression.documents:
            continue
        used = impression.used_ids(kinds)
        key = f"impression:{impression.id}"
        groups[key] = impression.query_key
        labels[key] = {}
        logits[key] = {}
        if rescore:
            if impression.query is None or any("text" not in d for d in impression.documents):
                raise InvalidInputError(
                    f"impression {impression.id} has no stored text (the log was recorded with store_text=False); "
                    "rescoring needs the texts: calibrate with the recorded scores instead (without --rescore)"
                )
        elif impression.model != model_id:
            # e.g. served by a fallback: its scores say nothing about this model's
            other = impression.model or "an unrecorded model"
            skipped[other] = skipped.get(other, 0) + 1
            del labels[key], logits[key], groups[key]
            continue
        for position, document in enumerate(impression.documents):
            doc = f"{position}:{document['id']}"
            labels[key][doc] = 1.0 if document["id"] in used else 0.0
            if rescore:
                pending.append((key, doc, impression.query, document["text"]))
                continue
            raw = document.get("raw_score")
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
                raise InvalidInputError(
                    f"impression {impression.id} document {position} ({document['id']}) has no finite raw score "
                    f"(received {describe(raw)}); rescore the stored texts with --rescore"
                )
            logits[key][doc] = float(raw)
    if skipped and not logits:
        first = next(iter(skipped))
        raise InvalidInputError(
            f"every impression was scored by another model (first: {first}), but the model being calibrated is {model_id}: "
            "a calibration is valid only for the scores it was fitted on. Calibrate that model (--model), or rescore the "
            "stored texts with --rescore (needs a log recorded with store_text=True)"
        )
    if pending:
        if reranker is None:
            raise InvalidInputError("rescoring a feedback log needs a reranker")
        values = _score(reranker, [(query, text) for _, _, query, text in pending])
        for (key, doc, _, _), value in zip(pending, values):
            logits[key][doc] = float(value)
    answerable = {q: any(v > 0 for v in docs.values()) for q, docs in labels.items()}
    what = "used" if kinds is None else f"used ({', '.join(sorted(kinds))})"
    return LabelledQueries(logits, labels, answerable=answerable, groups=groups,
                           source=source or f"feedback log: shown and {what} = relevant, shown and not used = not relevant",
                           extra={"skipped_models": skipped})
