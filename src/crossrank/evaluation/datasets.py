"""Relevance-judged datasets in BEIR layout, read from any folder.

A dataset folder holds ``corpus.jsonl`` (``{"_id", "title", "text"}``), ``queries.jsonl``
(``{"_id", "text"}``) and ``qrels/<split>.tsv`` (``query-id<TAB>corpus-id<TAB>score`` with a
header line). Two optional extensions are understood: ``qrels/<split>-evidence.tsv`` (a stricter
relevance set; queries of the split missing from it have no answer in the corpus) and
``candidates/<split>.*.tsv`` (fixed candidate lists, ``query-id<TAB>corpus-id<TAB>rank``) with
``query_labels.<split>.tsv`` (``query-id<TAB>subset<TAB>has_relevant``).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from crossrank.errors import InvalidInputError

__all__ = ["BeirDataset", "Qrels", "document_text", "load_dataset", "read_qrels"]

Qrels = dict[str, dict[str, int]]
"""``{query_id: {doc_id: grade}}``; grade 0 means judged non-relevant."""


def document_text(title: str, text: str) -> str:
    """The passage shown to the model: title and body separated by a space, as BEIR does."""
    title = title.strip()
    return f"{title} {text}" if title else text


@dataclass
class BeirDataset:
    """One dataset folder loaded into memory.

    Attributes:
        path: The folder it was read from.
        corpus: ``{doc_id: (title, text)}``.
        queries: ``{query_id: text}``.

    Example:
        >>> data = load_dataset("../shared/data/scifact")  # doctest: +SKIP
        >>> qrels = data.qrels("test")  # doctest: +SKIP
    """

    path: Path
    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    _qrels_cache: dict[str, Qrels] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    def document(self, doc_id: str) -> str:
        title, text = self.corpus[doc_id]
        return document_text(title, text)

    def splits(self) -> list[str]:
        folder = self.path / "qrels"
        return sorted(p.stem for p in folder.glob("*.tsv")) if folder.is_dir() else []

    def has_qrels(self, name: str) -> bool:
        return (self.path / "qrels" / f"{name}.tsv").is_file()

    def qrels(self, name: str) -> Qrels:
        """Judgements from ``qrels/<name>.tsv`` (e.g. ``test`` or ``test-evidence``)."""
        if name not in self._qrels_cache:
            file = self.path / "qrels" / f"{name}.tsv"
            if not file.is_file():
                raise InvalidInputError(
                    f"{self.path}: no qrels file for split {name!r}; available: {self.splits() or 'none'}"
                )
            self._qrels_cache[name] = read_qrels(file)
        return self._qrels_cache[name]

    def split_queries(self, split: str) -> list[str]:
        """Query ids belonging to ``split``, in a stable order.

        A split is defined by its qrels file, by its candidate lists or by its query labels.
        """
        ids: set[str] = set()
        if self.has_qrels(split):
            ids.update(self.qrels(split))
        labels = self.query_labels(split)
        if labels:
            ids.update(labels)
        ids.update(self.fixed_candidates(split))
        if not ids:
            raise InvalidInputError(f"{self.path}: split {split!r} has no qrels, candidates or query labels")
        missing = sorted(q for q in ids if q not in self.queries)
        if missing:
            raise InvalidInputError(f"{self.path}: {len(missing)} query ids of split {split!r} are not in queries.jsonl, e.g. {missing[0]!r}")
        return sorted(ids, key=_natural_key)

    def answerable(self, split: str) -> dict[str, bool] | None:
        """For each query of ``split``, whether the corpus holds an answer; ``None`` if unknown.

        Uses ``query_labels.<split>.tsv`` when present, else ``qrels/<split>-evidence.tsv``
        (queries absent from it have no evidence), else nothing.
        """
        labels = self.query_labels(split)
        if labels:
            return {q: value for q, value in labels.items()}
        if self.has_qrels(f"{split}-evidence"):
            evidence = self.qrels(f"{split}-evidence")
            return {q: any(g > 0 for g in evidence.get(q, {}).values()) for q in self.split_queries(split)}
        return None

    def query_labels(self, split: str) -> dict[str, bool]:
        file = self.path / f"query_labels.{split}.tsv"
        if not file.is_file():
            return {}
        labels: dict[str, bool] = {}
        with file.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t")
            header = next(reader, None)
            if header is None or "has_relevant" not in header:
                raise InvalidInputError(f"{file}: expected a header with a 'has_relevant' column")
            column = header.index("has_relevant")
            for row in reader:
                if row:
                    labels[row[0]] = row[column].strip() not in ("0", "false", "False", "")
        return labels

    def fixed_candidates(self, split: str) -> dict[str, list[str]]:
        """Candidate lists shipped with the dataset (``candidates/<split>*.tsv``), ranked."""
        folder = self.path / "candidates"
        if not folder.is_dir():
            return {}
        ranked: dict[str, list[tuple[int, str]]] = {}
        for file in sorted(folder.glob(f"{split}.tsv")) + sorted(folder.glob(f"{split}.*.tsv")):
            with file.open(encoding="utf-8", newline="") as handle:
                reader = csv.reader(handle, delimiter="\t")
                next(reader, None)
                for row in reader:
                    if len(row) < 2:
                        continue
                    rank = int(row[2]) if len(row) > 2 and row[2].strip() else len(ranked.get(row[0], [])) + 1
                    ranked.setdefault(row[0], []).append((rank, row[1]))
        return {q: [d for _, d in sorted(items)] for q, items in ranked.items()}

    def fingerprint(self) -> str:
        """A short digest of the folder's files (names, sizes, modification times)."""
        digest = hashlib.sha256()
        for file in sorted(self.path.rglob("*")):
            if file.is_file() and file.suffix in (".jsonl", ".tsv"):
                stat = file.stat()
                digest.update(f"{file.relative_to(self.path)}\0{stat.st_size}\0{int(stat.st_mtime)}\n".encode())
        return digest.hexdigest()[:16]


def _natural_key(value: str) -> tuple[int, int | str]:
    return (0, int(value)) if value.isdigit() else (1, value)


def read_qrels(file: Path) -> Qrels:
    """``{query_id: {doc_id: grade}}`` from a BEIR qrels TSV (header line optional)."""
    qrels: Qrels = {}
    with file.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for number, row in enumerate(reader, start=1):
            if not row or (number == 1 and not row[-1].strip().lstrip("-").isdigit()):
                continue  # header line
            if len(row) < 3:
                raise InvalidInputError(f"{file} line {number}: expected query-id, corpus-id, score; received {row!r}")
            try:
                grade = int(float(row[2]))
            except ValueError:
                raise InvalidInputError(f"{file} line {number}: score must be a number; received {row[2]!r}") from None
            qrels.setdefault(row[0], {})[row[1]] = grade
    return qrels


def _read_jsonl(file: Path) -> list[dict]:
    rows = []
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{file} line {number}: invalid JSON ({exc.msg})") from None
            if not isinstance(item, dict) or "_id" not in item:
                raise InvalidInputError(f"{file} line {number}: expected an object with '_id'")
            rows.append(item)
    return rows


def load_dataset(path: str | Path) -> BeirDataset:
    """Read a BEIR-layout folder (corpus, queries; qrels are read on demand)."""
    path = Path(path).expanduser().resolve()
    for required in ("corpus.jsonl", "queries.jsonl"):
        if not (path / required).is_file():
            raise InvalidInputError(f"{path}: not a BEIR dataset folder (missing {required})")
    corpus = {
        str(row["_id"]): (str(row.get("title") or ""), str(row.get("text") or ""))
        for row in _read_jsonl(path / "corpus.jsonl")
    }
    queries = {str(row["_id"]): str(row.get("text") or "") for row in _read_jsonl(path / "queries.jsonl")}
    return BeirDataset(path=path, corpus=corpus, queries=queries)
