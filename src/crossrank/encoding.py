"""Tokenizing query/document pairs: query-safe truncation and long-document windows.

The cost of a text is bounded by what can be kept of it: a text much longer than its token
allowance is tokenized from a prefix of its characters (cut where words end, read further only
when that prefix holds too few tokens), so a 5 MB document costs about what its kept tokens cost.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crossrank.errors import ConfigurationError, ModelIntegrityError

__all__ = [
    "PairEncoder", "EncodedSegment", "EncodingReport", "LONG_DOCUMENT_MODES", "POOLING_MODES", "split_sentences",
]

LONG_DOCUMENT_MODES = ("truncate", "window", "select")
POOLING_MODES = ("max", "mean")


# Where one sentence ends and the next begins: after closing punctuation followed by whitespace;
# after Latin closing punctuation directly followed by Chinese or Japanese; after the sentence
# punctuation of scripts that need no space after it (CJK 。！？； and their half- and fullwidth
# forms, Devanagari danda, Arabic question mark and full stop), with any closing quotes or
# brackets that follow it; or at a line break.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_SENTENCE_BREAK = re.compile(
    r"(?<=[.!?;:])\s+"
    rf"|[.!?](?=[{_CJK}])"
    r"|[\u3002\uff01\uff1f\uff1b\uff0e\uff61\u0964\u0965\u061f\u06d4][\"'\u201d\u2019\u300d\u300f\uff09\u3011\u3009\u300b\u3015\])]*\s*"
    r"|\n+"
)

# How much of a long text is tokenized: first this many characters per token that can be kept
# (English averages 4 to 5), then four times more at each retry while the prefix holds too few
# tokens (long words, runs of spaces), but never more than _MAX_CHARS_PER_TOKEN per token.
_FIRST_CHARS_PER_TOKEN = 8
_MAX_CHARS_PER_TOKEN = 64
_SLACK_CHARS = 256
# How far past the planned cut a word end is looked for, and how far back from the cut the last
# gap between words is looked for. Only the plain space counts as a gap: every kind of
# tokenizer splits words there (line breaks and other spaces are not split on by some).
_CUT_SEARCH_CHARS = 1024
_WORD_END = re.compile(r"\S(?= )")
_LAST_GAP = re.compile(r" (?=[^ ]*\Z)")
_PUNCTUATION_RUN = re.compile(r"(?<=\w)[^\w\s]")


@dataclass(frozen=True)
class EncodedSegment:
    """One model input row: a pair (or one window of a long document's pair)."""

    pair: int
    input_ids: np.ndarray
    token_type_ids: np.ndarray


@dataclass
class EncodingReport:
    """What encoding did to the texts it was given.

    Attributes:
        truncated_documents: Documents of which part was left out: truncated, cut at
            ``max_windows`` windows, reduced to selected sentences, or longer than the part of
            them that was read.
        windowed_documents: Documents split into several windows.
        windows: Windows produced for windowed documents.
        truncated_queries: Queries cut at ``max_query_length`` tokens.
        truncated_query_indices: Positions (in the ``queries`` argument) of those queries.
        partially_scanned_documents: ``select`` documents longer than the scan bound
            (:attr:`PairEncoder.select_scan_tokens` tokens): sentences were chosen from their
            leading part only. Each is also counted in ``truncated_documents``.
    """

    truncated_documents: int = 0
    windowed_documents: int = 0
    windows: int = 0
    truncated_queries: int = 0
    truncated_query_indices: set[int] = field(default_factory=set)
    partially_scanned_documents: int = 0


@dataclass(frozen=True)
class _LeadingTokens:
    """The first tokens of a text, as whole-text tokenization would give them.

    ``text`` is what was tokenized (the whole text or a prefix of it; offsets refer to it), and
    ``complete`` is False when characters after ``text`` were never read. ``exact`` is False
    only for a prefix that neither ends at a word end nor holds a gap between words (one
    extremely long "word"): its last tokens may differ from the whole text's.
    """

    ids: list[int]
    offsets: list[tuple[int, int]]
    text: str
    complete: bool
    exact: bool = True


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

    What a text costs is bounded by what can be kept of it: a truncated document needs its first
    tokens only, a windowed one the tokens of ``max_windows`` windows, and sentence selection
    scans the first :attr:`select_scan_tokens` tokens (``max_windows * max_length``); a
    longer text is tokenized from a prefix of its characters that holds those tokens. The
    prefix ends at a word end and only the tokens before its last word are used, which gives the
    same tokens as tokenizing the text whole wherever a space lies within 1,024 characters of
    the cut. At most 64 characters are read per token that can be kept, so a text made of
    extremely long "words" or runs of spaces is cut there; every document cut this way is
    counted as truncated.

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
        self.select_scan_tokens = max_windows * max_length

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
        query_tokens = self._leading_tokens([queries[q] for q in needed], [self.max_query_length + 1] * len(needed))
        for q_index, tokens in zip(needed, query_tokens):
            ids = tokens.ids
            if len(ids) > self.max_query_length or not tokens.complete:
                ids = ids[: self.max_query_length]
                report.truncated_queries += 1
                report.truncated_query_indices.add(q_index)
            query_ids[q_index] = ids
        t = self.template
        budgets = [self.max_length - t.special_count - len(query_ids[q]) for q in query_of_pair]
        document_tokens = self._leading_tokens(documents, [self._tokens_needed(budget) for budget in budgets])
        segments: list[EncodedSegment] = []
        for pair, (tokens, q_index, budget) in enumerate(zip(document_tokens, query_of_pair, budgets)):
            query = query_ids[q_index]
            doc = tokens.ids
            cut = not tokens.complete  # characters after the tokenized prefix were never read
            if self.long_documents == "select" and (cut or len(doc) > self.select_scan_tokens):
                doc, cut = doc[: self.select_scan_tokens], True
                report.partially_scanned_documents += 1
            if len(doc) <= budget:
                pieces = [doc]
                if cut:
                    report.truncated_documents += 1
            elif self.long_documents == "truncate":
                pieces = [doc[:budget]]
                report.truncated_documents += 1
            elif self.long_documents == "select":
                pieces = [_select_sentences(tokens.text, doc, tokens.offsets[: len(doc)], query, budget)]
                report.truncated_documents += 1
            else:
                step = budget - self.window_overlap
                starts = list(range(0, len(doc) - self.window_overlap, step))
                if len(starts) > self.max_windows or cut:
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

    def _tokens_needed(self, budget: int) -> int:
        """Leading document tokens that decide a pair's rows (one more shows there are more)."""
        if self.long_documents == "truncate":
            return budget + 1
        if self.long_documents == "select":
            return max(budget, self.select_scan_tokens) + 1
        return self.max_windows * (budget - self.window_overlap) + self.window_overlap + 1

    def _leading_tokens(self, texts: Sequence[str], needed: Sequence[int]) -> list[_LeadingTokens]:
        """The first ``needed[i]`` tokens of each text (all of them when it has fewer).

        A text short enough is tokenized whole. A longer one is tokenized from a prefix that
        ends at a word end, and only tokens that end before the prefix's last word are kept,
        since the last word may tokenize differently once the text goes on. When those are
        fewer than needed, a four times longer prefix is read, up to
        ``_MAX_CHARS_PER_TOKEN`` characters per needed token, where the prefix's tokens are
        taken as they are.
        """
        limits = [n * _FIRST_CHARS_PER_TOKEN + _SLACK_CHARS for n in needed]
        pieces = [text[: _cut_point(text, limit)] for text, limit in zip(texts, limits)]
        encodings = self.tokenizer.encode_batch(pieces, add_special_tokens=False)  # type: ignore[attr-defined]
        results: list[_LeadingTokens] = []
        for text, piece, encoding, limit, count in zip(texts, pieces, encodings, limits, needed):
            ceiling = count * _MAX_CHARS_PER_TOKEN + _SLACK_CHARS
            while True:
                if len(piece) == len(text):
                    results.append(_LeadingTokens(encoding.ids, encoding.offsets, text, complete=True))
                    break
                kept = _stable_token_count(piece, encoding.offsets)
                if kept >= count or (kept and limit >= ceiling):
                    results.append(_LeadingTokens(encoding.ids[:kept], encoding.offsets[:kept], piece, complete=False))
                    break
                if limit >= ceiling:  # no gap between words at all: take the prefix's tokens as they are
                    at_word_end = piece[-1:].strip() != "" and text[len(piece)] == " "
                    results.append(
                        _LeadingTokens(encoding.ids, encoding.offsets, piece, complete=False, exact=at_word_end)
                    )
                    break
                limit = min(limit * 4, ceiling)
                piece = text[: _cut_point(text, limit)]
                encoding = self.tokenizer.encode(piece, add_special_tokens=False)  # type: ignore[attr-defined]
        return results

    @property
    def pad_id(self) -> int:
        padding = self.tokenizer.token_to_id("[PAD]")  # type: ignore[attr-defined]
        if padding is None:
            padding = self.tokenizer.token_to_id("<pad>")  # type: ignore[attr-defined]
        return int(padding) if padding is not None else 0


def _cut_point(text: str, limit: int) -> int:
    """Where to cut ``text`` near ``limit`` characters: after the first word that ends there.

    Tokenizers split words at spaces, so a prefix that ends at a word end tokenizes like the
    whole text up to its last word. Without a word end (a space) nearby, the cut is at ``limit``;
    a text no longer than ``limit`` is not cut.
    """
    if len(text) <= limit:
        return len(text)
    match = _WORD_END.search(text, max(0, limit - 1), limit + _CUT_SEARCH_CHARS)
    return match.end() if match is not None else limit


def _stable_token_count(piece: str, offsets: Sequence[tuple[int, int]]) -> int:
    """How many leading tokens of ``piece`` the rest of the text cannot change.

    Those that end at or before the last gap between words: the space before the last word or,
    in text without spaces (Chinese, Japanese), the last punctuation that follows a word
    character. With neither close to the end, none are sure and the caller reads further.
    """
    end = len(piece.rstrip(" "))
    window_start = max(0, end - _CUT_SEARCH_CHARS)
    gap = _LAST_GAP.search(piece, window_start, end)
    if gap is not None:
        boundary = gap.start()
    else:
        boundary = -1
        for match in _PUNCTUATION_RUN.finditer(piece, window_start, end):
            boundary = match.start()
        if boundary < 0:
            return 0
    # Offsets are in order; count the tokens that end by the boundary.
    low, high = 0, len(offsets)
    while low < high:
        middle = (low + high) // 2
        if offsets[middle][1] <= boundary:
            low = middle + 1
        else:
            high = middle
    return low


def split_sentences(text: str) -> list[str]:
    """``text`` split where sentence selection sees one sentence end and the next begin.

    A sentence ends at ``.!?;:`` followed by whitespace, at ``.!?`` directly followed by Chinese
    or Japanese, at the punctuation of scripts written without a space after it (``。！？；``,
    their half- and fullwidth forms, Devanagari ``।``/``॥``, Arabic ``؟``/``۔``) with any closing
    quotes or brackets after it, and at line breaks. The pieces join back into ``text``.

    Example:
        >>> split_sentences("東京は首都です。大阪は大きい！ Paris. Lyon")
        ['東京は首都です。', '大阪は大きい！ ', 'Paris. ', 'Lyon']
    """
    starts = [0, *(match.end() for match in _SENTENCE_BREAK.finditer(text) if match.end() < len(text))]
    return [text[start:end] for start, end in zip(starts, [*starts[1:], len(text)]) if end > start]


def _select_sentences(
    text: str, ids: Sequence[int], offsets: Sequence[tuple[int, int]], query: Sequence[int], budget: int
) -> list[int]:
    """The document's tokens reduced to its most query-related sentences, in document order.

    ``offsets`` locate ``ids`` in ``text``. A sentence scores the document-internal IDF of each
    distinct query token it contains, so words in every sentence ("the", "of") count for almost
    nothing. Sentences are taken best first while they fit in ``budget``; with no overlap at
    all this keeps the leading sentences.
    """
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
