"""Training data: every supported format becomes queries, a corpus and graded judgments.

Formats (``DataSpec.format``):

- ``beir``: a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``), graded
  or binary scores.
- ``pairs``: JSONL or CSV rows ``(query, positive[, negatives])``; in JSONL ``negatives`` is a
  list of strings, in CSV any column whose name starts with ``negative`` holds one.
- ``graded``: JSONL or CSV rows ``(query, document, label)`` with numeric labels (e.g. 1-5
  expert ratings; 0 marks a judged non-relevant document).
- ``interactions``: JSONL or CSV rows ``(query, shown, clicked)``: ``shown`` is a list of
  documents, ``clicked`` a list of clicked (or voted) documents or their positions in
  ``shown``. Clicked documents become positives (label 1), shown but not clicked ones judged
  negatives (label 0). In CSV, ``shown`` and ``clicked`` hold JSON lists.

A malformed row is reported with its file and line. With ``on_error="raise"`` (default) the first
one fails the load; with ``"skip"`` it is skipped and counted in :class:`DataReport`, never
dropped silently.

Example:
    >>> spec = DataSpec(format="pairs", path="train.jsonl")
    >>> data = load_data(spec)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crossrank.errors import ConfigurationError, InvalidInputError
from crossrank.evaluation.datasets import read_qrels

__all__ = ["DATA_FORMATS", "DataReport", "DataSpec", "RankingData", "load_data", "text_id"]

DATA_FORMATS = ("beir", "pairs", "graded", "interactions")
ON_ERROR = ("raise", "skip")


def text_id(prefix: str, text: str) -> str:
    """A stable id for a text (the same text always gets the same id)."""
    return prefix + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class DataSpec:
    """Where training data is and how to read it.

    Attributes:
        format: One of ``beir``, ``pairs``, ``graded``, ``interactions``.
        path: BEIR folder, or a ``.jsonl``/``.csv``/``.tsv`` file.
        split: BEIR qrels split to read (``qrels/<split>.tsv``).
        on_error: ``"raise"`` on the first malformed row, or ``"skip"`` and count it.
        judged_negatives_from: BEIR only: another qrels split whose judgments count as judged
            non-relevant (grade 0) wherever ``split`` does not judge the pair. Its queries
            without a relevant document in ``split`` join the data as no-answer queries. For
            SciFact, ``split: train-evidence`` with ``judged_negatives_from: train`` makes the
            cited abstracts without an annotated rationale explicit negatives and the claims
            without evidence no-answer queries.
    """

    format: str
    path: str
    split: str = "train"
    on_error: str = "raise"
    judged_negatives_from: str | None = None

    def __post_init__(self) -> None:
        if self.format not in DATA_FORMATS:
            raise ConfigurationError(f"data format must be one of {DATA_FORMATS}; received {self.format!r}")
        if self.on_error not in ON_ERROR:
            raise ConfigurationError(f"on_error must be one of {ON_ERROR}; received {self.on_error!r}")
        if not isinstance(self.path, str) or not self.path:
            raise ConfigurationError(f"data path must be a non-empty string; received {self.path!r}")
        if self.judged_negatives_from is not None:
            if self.format != "beir":
                raise ConfigurationError(
                    f"judged_negatives_from needs format 'beir' (a qrels split); received format {self.format!r}"
                )
            if not isinstance(self.judged_negatives_from, str) or self.judged_negatives_from in ("", self.split):
                raise ConfigurationError(
                    f"judged_negatives_from must name a qrels split other than split {self.split!r}; "
                    f"received {self.judged_negatives_from!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataSpec:
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ConfigurationError(f"invalid data spec: {exc}") from None


@dataclass
class DataReport:
    """Counts of what was read; ``errors`` lists every skipped row as ``file:line: reason``."""

    rows: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    other_split_queries: int = 0
    """BEIR queries judged only in another split's qrels (a test split's, say), left out of the data."""
    judged_negatives: int = 0
    """Pairs judged only in ``judged_negatives_from``'s qrels, added as judged non-relevant."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RankingData:
    """Queries, corpus and graded judgments (0 = judged non-relevant)."""

    queries: dict[str, str]
    corpus: dict[str, str]
    qrels: dict[str, dict[str, float]]
    report: DataReport = field(default_factory=DataReport)

    def positives(self, qid: str) -> list[str]:
        return [doc for doc, grade in self.qrels.get(qid, {}).items() if grade > 0]

    def judged_queries(self) -> list[str]:
        """Queries with at least one relevant document, in a stable order."""
        return sorted(q for q in self.qrels if q in self.queries and self.positives(q))

    def no_answer_queries(self) -> list[str]:
        """Queries whose judged documents are all non-relevant, in a stable order."""
        return sorted(q for q in self.qrels if q in self.queries and self.qrels[q] and not self.positives(q))

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for qid in sorted(self.qrels):
            for doc, grade in sorted(self.qrels[qid].items()):
                digest.update(f"{qid}\t{doc}\t{grade}\n".encode())
        digest.update(str(len(self.corpus)).encode())
        return digest.hexdigest()[:16]


class _Collector:
    def __init__(self, spec: DataSpec) -> None:
        self.spec = spec
        self.report = DataReport()
        self.queries: dict[str, str] = {}
        self.corpus: dict[str, str] = {}
        self.qrels: dict[str, dict[str, float]] = {}

    def bad(self, file: Path, line: int, reason: str) -> None:
        message = f"{file}:{line}: {reason}"
        if self.spec.on_error == "raise":
            raise InvalidInputError(f"malformed training data row {message} (set on_error: skip to skip such rows)")
        self.report.skipped += 1
        self.report.errors.append(message)

    def query(self, text: str) -> str:
        qid = text_id("q", text)
        self.queries[qid] = text
        return qid

    def document(self, text: str) -> str:
        did = text_id("d", text)
        self.corpus[did] = text
        return did

    def judge(self, qid: str, did: str, grade: float) -> None:
        # A document judged twice keeps its highest grade (a click outweighs an earlier skip).
        grades = self.qrels.setdefault(qid, {})
        grades[did] = max(grade, grades.get(did, grade))

    def result(self) -> RankingData:
        return RankingData(self.queries, self.corpus, self.qrels, self.report)


def _rows(file: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, row)``: a parsed JSON value (JSONL) or a dict of strings (CSV/TSV); errors as str."""
    if file.suffix == ".jsonl" or file.suffix == ".json":
        with file.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, f"invalid JSON ({exc.msg})"
    elif file.suffix in (".csv", ".tsv"):
        with file.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if file.suffix == ".tsv" else ",")
            for row in reader:
                number = reader.line_num
                if None in row or any(v is None for v in row.values()):
                    yield number, f"expected {len(reader.fieldnames or [])} columns"
                    continue
                yield number, row
    else:
        raise ConfigurationError(f"training data file must be .jsonl, .csv or .tsv; received {file}")


def _text(row: Mapping[str, Any], key: str) -> str | None:
    value = row.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _json_list(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, list) else None
    return None


def _object_rows(file: Path, out: _Collector) -> Iterator[tuple[int, dict[str, Any]]]:
    """Counted rows that are objects; anything else is reported as a bad row with its line."""
    for number, row in _rows(file):
        out.report.rows += 1
        if isinstance(row, str) or not isinstance(row, dict):
            out.bad(file, number, row if isinstance(row, str) else "expected an object")
            continue
        yield number, row


def _load_pairs(spec: DataSpec, file: Path) -> RankingData:
    out = _Collector(spec)
    for number, row in _object_rows(file, out):
        query, positive = _text(row, "query"), _text(row, "positive")
        if query is None or positive is None:
            out.bad(file, number, "expected non-empty 'query' and 'positive' strings")
            continue
        raw = row.get("negatives")
        negatives: Any
        if raw is None:
            # CSV: one column per negative (negative_1, negative_2, ...); empty cells are absent negatives.
            negatives = [v for k, v in row.items() if k.startswith("negative") and isinstance(v, str) and v.strip()]
        elif isinstance(raw, str):
            negatives = _json_list(raw) if raw.strip().startswith("[") else ([raw] if raw.strip() else [])
        else:
            negatives = raw
        if not isinstance(negatives, list) or not all(isinstance(n, str) and n.strip() for n in negatives):
            out.bad(file, number, "'negatives' must be a list of non-empty strings")
            continue
        qid = out.query(query)
        out.judge(qid, out.document(positive), 1.0)
        for negative in negatives:
            out.judge(qid, out.document(negative), 0.0)
    return out.result()


def _load_graded(spec: DataSpec, file: Path) -> RankingData:
    out = _Collector(spec)
    for number, row in _object_rows(file, out):
        query, document = _text(row, "query"), _text(row, "document")
        label = row.get("label")
        try:
            grade = float(label) if not isinstance(label, bool) and label is not None and str(label).strip() else None
        except ValueError:
            grade = None
        if query is None or document is None or grade is None or not math.isfinite(grade) or grade < 0:
            out.bad(file, number, f"expected 'query', 'document' and a numeric 'label' >= 0; received label {label!r}")
            continue
        out.judge(out.query(query), out.document(document), grade)
    return out.result()


def _load_interactions(spec: DataSpec, file: Path) -> RankingData:
    out = _Collector(spec)
    for number, row in _object_rows(file, out):
        query = _text(row, "query")
        shown, clicked = _json_list(row.get("shown")), _json_list(row.get("clicked", []))
        if query is None or not shown or clicked is None or not all(isinstance(s, str) and s.strip() for s in shown):
            out.bad(file, number, "expected 'query', a non-empty 'shown' list of strings and a 'clicked' list")
            continue
        chosen: set[int] = set()
        valid = True
        for item in clicked:
            if isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(shown):
                chosen.add(item)
            elif isinstance(item, str) and item in shown:
                chosen.add(shown.index(item))
            else:
                valid = False
        if not valid:
            out.bad(file, number, "'clicked' entries must be positions in 'shown' or documents from it")
            continue
        qid = out.query(query)
        for position, document in enumerate(shown):
            out.judge(qid, out.document(document), 1.0 if position in chosen else 0.0)
    return out.result()


def _load_beir(spec: DataSpec, folder: Path) -> RankingData:
    out = _Collector(spec)
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / name).is_file():
            raise InvalidInputError(f"{folder} is not a BEIR folder: {name} is missing")
    qrels_file = folder / "qrels" / f"{spec.split}.tsv"
    if not qrels_file.is_file():
        raise InvalidInputError(f"{folder} has no qrels for split {spec.split!r} ({qrels_file} is missing)")
    for number, row in _rows(folder / "corpus.jsonl"):
        if not isinstance(row, dict) or not isinstance(row.get("_id"), (str, int)) or not isinstance(row.get("text"), str):
            out.bad(folder / "corpus.jsonl", number, "expected an object with '_id' and 'text'")
            continue
        title = row.get("title") or ""
        out.corpus[str(row["_id"])] = f"{title}. {row['text']}" if title else row["text"]
    for number, row in _rows(folder / "queries.jsonl"):
        if not isinstance(row, dict) or not isinstance(row.get("_id"), (str, int)) or not isinstance(row.get("text"), str):
            out.bad(folder / "queries.jsonl", number, "expected an object with '_id' and 'text'")
            continue
        out.queries[str(row["_id"])] = row["text"]
    with qrels_file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").split("\t")
            if number == 1 and parts and not parts[-1].lstrip("-").isdigit():
                continue  # header
            if not line.strip():
                continue
            out.report.rows += 1
            try:
                qid, did, grade = parts[0], parts[1], float(parts[2])
            except (IndexError, ValueError):
                out.bad(qrels_file, number, "expected query-id<TAB>corpus-id<TAB>score")
                continue
            if qid not in out.queries or did not in out.corpus:
                out.bad(qrels_file, number, f"unknown query {qid!r} or document {did!r}")
                continue
            out.judge(qid, did, grade)
    if spec.judged_negatives_from is not None:
        negatives_file = folder / "qrels" / f"{spec.judged_negatives_from}.tsv"
        if not negatives_file.is_file():
            raise InvalidInputError(
                f"{folder} has no qrels for judged_negatives_from {spec.judged_negatives_from!r} ({negatives_file} is missing)"
            )
        for qid, judged in sorted(read_qrels(negatives_file).items()):
            for did in sorted(judged):
                if qid in out.queries and did in out.corpus and did not in out.qrels.get(qid, {}):
                    out.judge(qid, did, 0.0)
                    out.report.judged_negatives += 1
    # queries.jsonl holds every split's queries. Those judged only in another split must not
    # reach training, not even as unlabeled queries for distillation: a student that learned the
    # teacher's scores on the test queries' candidates would be measured on what it was taught.
    other_split = _judged_queries(qrels_file.parent, exclude=qrels_file) - set(out.qrels)
    for qid in other_split & set(out.queries):
        del out.queries[qid]
        out.report.other_split_queries += 1
    return out.result()


def _judged_queries(qrels_dir: Path, *, exclude: Path) -> set[str]:
    """Query ids named in the folder's other qrels files."""
    return {qid for path in sorted(qrels_dir.glob("*.tsv")) if path != exclude for qid in read_qrels(path)}


def load_data(spec: DataSpec, base: str | Path | None = None) -> RankingData:
    """Read training data as described by ``spec`` (relative paths resolve against ``base``)."""
    path = Path(spec.path)
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if not path.exists():
        raise InvalidInputError(f"training data {path} does not exist")
    if spec.format == "beir":
        return _load_beir(spec, path)
    loader = {"pairs": _load_pairs, "graded": _load_graded, "interactions": _load_interactions}[spec.format]
    return loader(spec, path)
