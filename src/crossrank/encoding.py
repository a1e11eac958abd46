"""Tokenizing query/document pairs: query-safe truncation and long-document windows."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crossrank.errors import ConfigurationError, ModelIntegrityError

__all__ = ["PairEncoder", "EncodedSegment", "EncodingReport", "LONG_DOCUMENT_MODES", "POOLING_MODES"]

LONG_DOCUMENT_MODES = ("truncate", "window", "select")
POOLING_MODES = ("max", "mean")


# Where one sentence ends and the next begins: after closing punctuation, or at a line break.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;:])\s+|\n+")


@dataclass(frozen=True)
class EncodedSegment:
    """One model input row: a pair (or one window of a long document's pair)."""

    pair: int
    input_ids: np.ndarray
    token_type_ids: np.ndarray


@dataclass
class EncodingReport:
    truncated_documents: int = 0
    windowed_documents: int = 0
    windows: int = 0
    truncated_queries: int = 0
    truncated_query_indices: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class _Template:
    """Special tokens around the two segments, read from the tokenizer's own post-processor."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    middle_types: tuple[int, ...]
    suffix_types: tuple[int, ...]
    query_type: int
    document_type: int

    @property
    def special_count(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


def _read_template(tokenizer: object) -> _Template:
    first = tokenizer.encode("a", add_special_tokens=False)  # type: ignore[attr-defined]
    second = tokenizer.encode("b", add_special_tokens=False)  # type: ignore[attr-defined]
    if len(first.ids) != 1 or len(second.ids) != 1 or first.ids == second.ids:
        raise ModelIntegrityError("tokenizer cannot encode the probe tokens 'a' and 'b' as single distinct tokens")
    pair = tokenizer.post_process(first, second, add_special_tokens=True)  # type: ignore[attr-defined]
    ids, types = pair.ids, pair.type_ids
    if ids.count(first.ids[0]) != 1 or ids.count(second.ids[0]) != 1:
        raise ModelIntegrityError(f"cannot read the pair template from the tokenizer's post-processor: {pair.tokens}")
    a_pos = ids.index(first.ids[0])
    b_pos = ids.index(second.ids[0])
    return _Template(
        prefix=tuple(ids[:a_pos]),
        middle=tuple(ids[a_pos + 1 : b_pos]),
        suffix=tuple(ids[b_pos + 1 :]),
        prefix_types=tuple(types[:a_pos]),
        middle_types=tuple(types[a_pos + 1 : b_pos]),
        suffix_types=tuple(types[b_pos + 1 :]),
        query_type=types[a_pos],
        document_type=types[b_pos],
    )


class PairEncoder:
    """Encodes (query, document) pairs into model rows without ever truncating the query away.

    The query keeps up to ``max_query_length`` tokens (longer queries are cut and counted);
    the document gets the rest of ``max_length``. A longer document is truncated
    (``long_documents="truncate"``, counted), split into overlapping windows (``"window"``),
    each scored separately and pooled later, or reduced to the sentences that share the most
    informative tokens with the query (``"select"``, counted as truncated), kept in their
    original order.

    Example:
        >>> encoder = PairEncoder.from_file("tokenizer.json", max_length=256)  # doctest: +SKIP
    """

    def __init__(
        self,
        tokenizer: object,
        *,
        max_length: int,
        max_query_length: int | None = None,
        long_documents: str = "truncate",
        window_overlap: int | None = None,
        max_windows: int = 8,
    ) -> None:
        self.tokenizer = tokenizer
        tokenizer.no_padding()  # type: ignore[attr-defined]
        tokenizer.no_truncation()  # type: ignore[attr-defined]
        self.template = _read_template(tokenizer)
        self.max_length = max_length
        self.max_query_length = max_query_length if max_query_length is not None else max_length // 2
        if long_documents not in LONG_DOCUMENT_MODES:
            raise ConfigurationError(f"long_documents must be one of {LONG_DOCUMENT_MODES}; received {long_documents!r}")
        self.long_documents = long_documents
        self.document_budget_min = max_length - self.template.special_count - self.max_query_length
        if self.document_budget_min < 1:
            raise ConfigurationError(
                f"max_query_length={self.max_query_length} leaves no room for the document in "
                f"max_length={max_length} ({self.template.special_count} special tokens)"
            )
        if window_overlap is None:
            # A quarter of the smallest document budget, at most 64 tokens, keeps windows mostly new text.
            window_overlap = min(64, self.document_budget_min // 4)
        if window_overlap < 0 or window_overlap >= self.document_budget_min:
            raise ConfigurationError(
                f"window_overlap must be in [0, {self.document_budget_min}) for these lengths; received {window_overlap}"
            )
        if max_windows < 1:
            raise ConfigurationError(f"max_windows must be >= 1; received {max_windows}")
        self.window_overlap = window_overlap
        self.max_windows = max_windows

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: object) -> PairEncoder:
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises plain Exception subclasses for bad JSON
            raise ModelIntegrityError(f"cannot load tokenizer {path}: {exc}") from None
        return cls(tokenizer, **kwargs)  # type: ignore[arg-type]

    def encode(
        self, queries: Sequence[str], documents: Sequence[str], query_of_pair: Sequence[int]
    ) -> tuple[list[EncodedSegment], EncodingReport]:
        """Encode pairs ``(queries[query_of_pair[i]], documents[i])`` into rows."""
        report = EncodingReport()
        # Only the queries these pairs use: a caller may encode its pairs slice by slice.
        needed = sorted(set(query_of_pair))
        query_ids: dict[int, list[int]] = {}
        encodings = self.tokenizer.encode_batch([queries[q] for q in needed], add_special_tokens=False)  # type: ignore[attr-defined]
        for q_index, encoding in zip(needed, encodings):
            ids = encoding.ids
            if len(ids) > self.max_query_length:
                ids = ids[: self.max_query_length]
                report.truncated_queries += 1
                report.truncated_query_indices.add(q_index)
            query_ids[q_index] = ids
        document_encodings = self.tokenizer.encode_batch(list(documents), add_special_tokens=False)  # type: ignore[attr-defined]
        t = self.template
        segments: list[EncodedSegment] = []
        for pair, (encoding, q_index) in enumerate(zip(document_encodings, query_of_pair)):
            query = query_ids[q_index]
            budget = self.max_length - t.special_count - len(query)
            doc = encoding.ids
            if len(doc) <= budget:
                pieces = [doc]
            elif self.long_documents == "truncate":
                pieces = [doc[:budget]]
                report.truncated_documents += 1
            elif self.long_documents == "select":
                pieces = [_select_sentences(documents[pair], encoding, query, budget)]
                report.truncated_documents += 1
            else:
                step = budget - self.window_overlap
                starts = list(range(0, len(doc) - self.window_overlap, step))
                if len(starts) > self.max_windows:
                    starts = starts[: self.max_windows]
                    report.truncated_documents += 1
                pieces = [doc[s : s + budget] for s in starts]
                report.windowed_documents += 1
                report.windows += len(pieces)
            for piece in pieces:
                ids = [*t.prefix, *query, *t.middle, *piece, *t.suffix]
                types = [
                    *t.prefix_types,
                    *([t.query_type] * len(query)),
                    *t.middle_types,
                    *([t.document_type] * len(piece)),
                    *t.suffix_types,
                ]
                segments.append(
                    EncodedSegment(pair, np.asarray(ids, dtype=np.int64), np.asarray(types, dtype=np.int64))
                )
        return segments, report

    @property
    def pad_id(self) -> int:
        padding = self.tokenizer.token_to_id("[PAD]")  # type: ignore[attr-defined]
        if padding is None:
            padding = self.tokenizer.token_to_id("<pad>")  # type: ignore[attr-defined]
        return int(padding) if padding is not None else 0


def _select_sentences(text: str, encoding: object, query: Sequence[int], budget: int) -> list[int]:
    """The document's tokens reduced to its most query-related sentences, in document order.

    A sentence scores the document-internal IDF of each distinct query token it contains, so
    words in every sentence ("the", "of") count for almost nothing. Sentences are taken best
    first while they fit in ``budget``; with no overlap at all this keeps the leading sentences.
    """
    ids: list[int] = encoding.ids  # type: ignore[attr-defined]
    offsets: list[tuple[int, int]] = encoding.offsets  # type: ignore[attr-defined]
    breaks = [match.end() for match in _SENTENCE_BREAK.finditer(text)]
    sentence_of_token = np.searchsorted(np.asarray(breaks, dtype=np.int64), [start for start, _ in offsets], side="right")
    sentences: dict[int, list[int]] = {}
    for position, sentence in enumerate(sentence_of_token.tolist()):
        sentences.setdefault(sentence, []).append(position)
    spans = list(sentences.values())
    frequency = Counter(token for span in spans for token in {ids[p] for p in span})
    query_tokens = set(query)

    def relevance(span: list[int]) -> float:
        present = {ids[p] for p in span} & query_tokens
        return sum(math.log(1.0 + len(spans) / frequency[token]) for token in present)

    ranked = sorted(range(len(spans)), key=lambda i: (-relevance(spans[i]), i))
    chosen: list[int] = []
    used = 0
    for index in ranked:
        if used + len(spans[index]) <= budget:
            chosen.append(index)
            used += len(spans[index])
    if not chosen:  # even the best sentence is longer than the budget
        return [ids[p] for p in spans[ranked[0]][:budget]]
    return [ids[p] for index in sorted(chosen) for p in spans[index]]
