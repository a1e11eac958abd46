"""Turning the many shapes of "a document" into text plus metadata, without touching the input."""

from __future__ import annotations

import json
import math
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crossrank.errors import InvalidInputError, InvalidInputTypeError, describe

__all__ = [
    "Document",
    "DocumentInput",
    "normalize_documents",
    "validate_query",
    "clean_text",
    "has_visible_character",
    "parse_json",
]

# Attribute or key names under which the frameworks keep a document's text, most specific first.
_TEXT_FIELDS = ("text", "page_content", "content")


@dataclass(frozen=True)
class Document:
    """A passage to rerank: its text and any metadata that should travel with it.

    Example:
        >>> from crossrank import Document
        >>> Document("Paris is the capital of France.", metadata={"source": "wiki"}).text
        'Paris is the capital of France.'
    """

    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


DocumentInput = Any
"""A string, a :class:`Document`, a mapping with a ``text``/``page_content``/``content`` key,
or any object with such an attribute (LlamaIndex nodes, LangChain and Haystack documents)."""


def clean_text(text: str) -> str:
    """Make text safe for the tokenizer without dropping content.

    Lone surrogates (which cannot be encoded as UTF-8) become U+FFFD, and a high/low surrogate
    pair left split (e.g. text decoded as UTF-16 code units) becomes the character it encodes;
    everything else, control characters, right-to-left and CJK text included, is kept as it is.

    Example:
        >>> clean_text("caf\\udce9") == "caf\\ufffd"
        True
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # UTF-16 with surrogatepass keeps valid pairs together; decoding replaces the lone ones.
        return text.encode("utf-16-le", errors="surrogatepass").decode("utf-16-le", errors="replace")
    return text


# Categories of characters that show nothing: separators (spaces, line and paragraph
# separators), control characters and format characters (zero-width spaces and joiners, the
# byte-order mark, bidirectional controls).
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


def has_visible_character(text: str) -> bool:
    """Whether ``text`` has a character that is not whitespace, a control or a format character.

    Example:
        >>> has_visible_character("\u200b \ufeff"), has_visible_character("\u200bparis")
        (False, True)
    """
    return any(not char.isspace() and unicodedata.category(char) not in _INVISIBLE_CATEGORIES for char in text)


def validate_query(query: object) -> str:
    """Return the query as a clean string or raise a typed error naming what was received.

    A query must have at least one visible character: one made only of whitespace, zero-width
    or byte-order marks, control or other format characters is refused like an empty one.
    """
    if not isinstance(query, str):
        raise InvalidInputTypeError(f"query must be a non-empty str; received {describe(query)}")
    if not has_visible_character(query):
        raise InvalidInputError(
            "query must contain at least one non-whitespace character (at least one visible character: "
            f"not only spaces, zero-width, control or format characters); received {describe(query)}"
        )
    return clean_text(query)


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` that reports every way untrusted text can fail as :class:`InvalidInputError`.

    Besides malformed JSON this covers what ``json.loads`` raises outside ``JSONDecodeError``:
    nesting deeper than the interpreter's recursion limit and integers longer than Python
    converts (``sys.get_int_max_str_digits``). The message is a short reason without the
    source; callers add the file and line.

    Example:
        >>> parse_json('{"text": "a"}')
        {'text': 'a'}
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InvalidInputError("JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"expected UTF-8 text; byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}") from None
    except ValueError:
        limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300
        raise InvalidInputError(f"a number has more than {limit} digits") from None


def _text_and_metadata(item: object, position: int) -> tuple[str, Mapping[str, Any]]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, Document):
        return item.text, item.metadata
    if isinstance(item, Mapping):
        for key in _TEXT_FIELDS:
            if key in item:
                metadata = item.get("metadata")
                if metadata is None:
                    metadata = {k: v for k, v in item.items() if k not in (key, "metadata")}
                return item[key], metadata
        raise InvalidInputTypeError(
            f"document {position} is a mapping without a 'text', 'page_content' or 'content' "
            f"key; received keys {sorted(map(str, item))[:10]}"
        )
    getter = getattr(item, "get_content", None)
    for name in _TEXT_FIELDS:
        if hasattr(item, name) and not callable(getattr(item, name)):
            text = getattr(item, name)
            break
    else:
        if callable(getter):
            text = getter()
        else:
            raise InvalidInputTypeError(
                f"document {position} must be a str, a crossrank.Document, a mapping with a "
                f"'text' key, or an object with a 'text'/'page_content'/'content' attribute; "
                f"received {describe(item)}"
            )
    metadata = getattr(item, "metadata", None) or getattr(item, "meta", None) or {}
    return text, metadata


def normalize_documents(documents: object) -> tuple[list[str], list[dict[str, Any]]]:
    """Extract texts and (copied) metadata from the documents, validating each one.

    Empty strings are accepted (they score like any other text); ``None`` or non-string text
    is rejected with the position of the offending document.
    """
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        # A mapping would be iterated as its keys and a set in arbitrary order: both are
        # almost certainly a single document or a mistake, never a ranked list.
        unordered = isinstance(documents, (Mapping, set, frozenset))
        if isinstance(documents, (str, bytes)) or unordered or not hasattr(documents, "__iter__"):
            raise InvalidInputTypeError(
                f"documents must be a list of documents; received {describe(documents)}"
            )
        documents = list(documents)  # type: ignore[call-overload]
    texts: list[str] = []
    metadatas: list[dict[str, Any]] = []
    for position, item in enumerate(documents):  # type: ignore[arg-type]
        if item is None:
            raise InvalidInputTypeError(f"document {position} is None; expected text")
        text, metadata = _text_and_metadata(item, position)
        if not isinstance(text, str):
            raise InvalidInputTypeError(
                f"document {position} must have str text; received {describe(text)}"
            )
        if not isinstance(metadata, Mapping):
            raise InvalidInputTypeError(
                f"document {position} metadata must be a mapping; received {describe(metadata)}"
            )
        texts.append(clean_text(text))
        metadatas.append(dict(metadata))
    return texts, metadatas


def validate_top_k(top_k: object) -> int | None:
    """``None`` keeps every document; otherwise a positive int (larger than the list is fine)."""
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise InvalidInputTypeError(f"top_k must be a positive int or None; received {describe(top_k)}")
    if top_k <= 0:
        raise InvalidInputError(f"top_k must be >= 1 (or None for all); received {top_k}")
    return top_k


def validate_probability(value: object, name: str) -> float:
    """A finite float in [0, 1]; booleans are refused because ``True`` would read as 1.0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputTypeError(f"{name} must be a float in [0, 1]; received {describe(value)}")
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"{name} must be a finite float in [0, 1]; received {value}")
    return value
