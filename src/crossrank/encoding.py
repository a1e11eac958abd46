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
    "PairEncoder", "PairLayout", "EncodedSegment", "EncodingReport", "LONG_DOCUMENT_MODES", "POOLING_MODES",
    "split_sentences",
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
# tokens (long words, runs of spaces), but never more than _MAX_CHARS_PER_TOKEN per token plus
# _CEILING_SLACK_CHARS: a text shorter than that slack is always read whole when it must be.
_FIRST_CHARS_PER_TOKEN = 8
_MAX_CHARS_PER_TOKEN = 64
_SLACK_CHARS = 256
_CEILING_SLACK_CHARS = 16_384
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
class PairLayout:
    """Where a pair's texts go in one model row, and what surrounds them.

    A row is ``prefix + query tokens + middle + document tokens + suffix``. The fixed parts
    are token ids; ``query_lead``/``query_tail`` and ``document_lead`` are texts tokenized
    *together with* the query or the document, as the model's own code does when it formats
    ``"A: {query}"`` or ``"<Query>: {query}\n"`` into one string. The query's tail is kept when
    the query is cut; the document's lead is repeated in front of every window of a long
    document when its tokens are a clean prefix of the document's tokens.

    Attributes:
        prefix, middle, suffix: Fixed token ids before the query, between query and
            document, and after the document.
        prefix_types, middle_types, suffix_types: Their token type ids (zeros when empty).
        query_type, document_type: Token type ids of the query's and the document's tokens.
        query_lead, query_tail: Text tokenized with the query, before and after it.
        document_lead: Text tokenized with the document, before it.
        pad_id: The padding token id (None: ``[PAD]``, ``<pad>`` or 0 from the vocabulary).
    """

    prefix: tuple[int, ...] = ()
    middle: tuple[int, ...] = ()
    suffix: tuple[int, ...] = ()
    prefix_types: tuple[int, ...] = ()
    middle_types: tuple[int, ...] = ()
    suffix_types: tuple[int, ...] = ()
    query_type: int = 0
    document_type: int = 0
    query_lead: str = ""
    query_tail: str = ""
    document_lead: str = ""
    pad_id: int | None = None

    def __post_init__(self) -> None:
        for part in ("prefix", "middle", "suffix"):
            ids, types = getattr(self, part), getattr(self, f"{part}_types")
            object.__setattr__(self, part, tuple(int(i) for i in ids))
            if not types:
                object.__setattr__(self, f"{part}_types", (0,) * len(ids))
            elif len(types) != len(ids):
                raise ConfigurationError(f"{part}_types must have one type id per {part} token; received {len(types)} for {len(ids)}")
            else:
                object.__setattr__(self, f"{part}_types", tuple(int(t) for t in types))

    @property
    def special_count(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    @classmethod
    def from_post_processor(cls, tokenizer: object, *, query_lead: str = "") -> PairLayout:
        """The special tokens around a pair, read from the tokenizer's own post-processor.

        The tokenizer's padding and truncation, if its file sets any, are switched off (the
        encoder lays out rows itself).
        """
        tokenizer.no_padding()  # type: ignore[attr-defined]
        tokenizer.no_truncation()  # type: ignore[attr-defined]
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
        return cls(
            prefix=tuple(ids[:a_pos]),
            middle=tuple(ids[a_pos + 1 : b_pos]),
            suffix=tuple(ids[b_pos + 1 :]),
            prefix_types=tuple(types[:a_pos]),
            middle_types=tuple(types[a_pos + 1 : b_pos]),
            suffix_types=tuple(types[b_pos + 1 :]),
            query_type=types[a_pos],
            document_type=types[b_pos],
            query_lead=query_lead,
        )


def _read_template(tokenizer: object) -> PairLayout:
    return PairLayout.from_post_processor(tokenizer)


class PairEncoder:
    """Encodes (query, document) pairs into model rows without ever truncating the query away.

    The query keeps up to ``max_query_length`` tokens (default: half of ``max_length``, or half
    of what a long prompt around the pair leaves; longer queries are cut and counted);
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
        layout: PairLayout | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        tokenizer.no_padding()  # type: ignore[attr-defined]
        tokenizer.no_truncation()  # type: ignore[attr-defined]
        self.template = layout if layout is not None else _read_template(tokenizer)
        t = self.template
        # Texts tokenized with the query or the document (a prompt's "A: ", a template's
        # "<Query>: "...): the tail stays when a query is cut, the lead starts every window.
        self._query_tail_ids = self._ids(t.query_tail)
        self._document_lead_ids = self._ids(t.document_lead)
        self.max_length = max_length
        if max_query_length is None:
            # Half of the row; with a long prompt around the pair, half of what the prompt leaves.
            max_query_length = max_length // 2
            room = max_length - t.special_count - len(self._document_lead_ids)
            if room - max_query_length < 1:
                max_query_length = max(1, room // 2)
        self.max_query_length = max_query_length
        if long_documents not in LONG_DOCUMENT_MODES:
            raise ConfigurationError(f"long_documents must be one of {LONG_DOCUMENT_MODES}; received {long_documents!r}")
        self.long_documents = long_documents
        around_query = len(self._ids(t.query_lead)) + len(self._query_tail_ids)
        if around_query and self.max_query_length <= around_query:
            raise ConfigurationError(
                f"max_query_length={self.max_query_length} leaves no room for the query: the text around it "
                f"({t.query_lead!r} ... {t.query_tail!r}) takes {around_query} tokens"
            )
        self.document_budget_min = max_length - t.special_count - self.max_query_length
        if self.document_budget_min < 1 + len(self._document_lead_ids):
            raise ConfigurationError(
                f"max_query_length={self.max_query_length} leaves no room for the document in "
                f"max_length={max_length} ({t.special_count} special and prompt tokens"
                + (f", {len(self._document_lead_ids)} before the document" if self._document_lead_ids else "")
                + ")"
            )
        body_budget = self.document_budget_min - len(self._document_lead_ids)
        if window_overlap is None:
            # A quarter of the smallest document budget, at most 64 tokens, keeps windows mostly new text.
            window_overlap = min(64, body_budget // 4)
        if window_overlap < 0 or window_overlap >= body_budget:
            raise ConfigurationError(
                f"window_overlap must be in [0, {body_budget}) for these lengths; received {window_overlap}"
            )
        if max_windows < 1:
            raise ConfigurationError(f"max_windows must be >= 1; received {max_windows}")
        self.window_overlap = window_overlap
        self.max_windows = max_windows
        self.select_scan_tokens = max_windows * max_length

    def _ids(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)  # type: ignore[attr-defined]

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
        t = self.template
        # Only the queries these pairs use: a caller may encode its pairs slice by slice.
        needed = sorted(set(query_of_pair))
        query_ids = self._query_ids([queries[q] for q in needed], needed, report)
        budgets = [self.max_length - t.special_count - len(query_ids[q]) for q in query_of_pair]
        lead_ids = self._document_lead_ids
        lead = len(lead_ids)
        if t.document_lead:
            documents = [t.document_lead + document for document in documents]
        document_tokens = self._leading_tokens(documents, [self._tokens_needed(budget - lead) + lead for budget in budgets])
        segments: list[EncodedSegment] = []
        for pair, (tokens, q_index, budget) in enumerate(zip(document_tokens, query_of_pair, budgets)):
            query = query_ids[q_index]
            doc = tokens.ids
            offsets = tokens.offsets
            head: list[int] = []
            if lead and doc[:lead] == lead_ids:
                # The lead tokenizes apart from the document: it starts every piece kept.
                head, doc, offsets, budget = lead_ids, doc[lead:], offsets[lead:], budget - lead
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
                pieces = [_select_sentences(tokens.text, doc, offsets[: len(doc)], query, budget)]
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
                if head:
                    piece = [*head, *piece]
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

    def _query_ids(self, texts: list[str], indices: list[int], report: EncodingReport) -> dict[int, list[int]]:
        """Each query's tokens (with the text around it), cut at ``max_query_length`` and counted."""
        t = self.template
        limit = self.max_query_length
        if t.query_lead or t.query_tail:
            texts = [t.query_lead + text + t.query_tail for text in texts]
        tokens = self._leading_tokens(texts, [limit + 1] * len(texts))
        out: dict[int, list[int]] = {}
        for q_index, text, leading in zip(indices, texts, tokens):
            ids = leading.ids
            if len(ids) > limit or not leading.complete:
                tail = self._query_tail_ids
                if tail:
                    # The text after the query (a line break before the document...) is kept.
                    head_text = text[: len(text) - len(t.query_tail)]
                    ids = [*self._leading_tokens([head_text], [limit - len(tail) + 1])[0].ids[: limit - len(tail)], *tail]
                else:
                    ids = ids[:limit]
                report.truncated_queries += 1
                report.truncated_query_indices.add(q_index)
            out[q_index] = ids
        return out

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
        ``_MAX_CHARS_PER_TOKEN`` characters per needed token plus ``_CEILING_SLACK_CHARS``,
        where the prefix's tokens are taken as they are.
        """
        limits = [n * _FIRST_CHARS_PER_TOKEN + _SLACK_CHARS for n in needed]
        pieces = [text[: _cut_point(text, limit)] for text, limit in zip(texts, limits)]
        encodings = self.tokenizer.encode_batch(pieces, add_special_tokens=False)  # type: ignore[attr-defined]
        results: list[_LeadingTokens] = []
        for text, piece, encoding, limit, count in zip(texts, pieces, encodings, limits, needed):
            ceiling = count * _MAX_CHARS_PER_TOKEN + _CEILING_SLACK_CHARS
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
        if self.template.pad_id is not None:
            return self.template.pad_id
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
