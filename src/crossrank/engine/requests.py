"""Requests: one query with its documents (and retriever scores), checked once at the door."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossrank.documents import normalize_documents, validate_query
from crossrank.errors import InvalidInputError, InvalidInputTypeError, describe
from crossrank.fusion import SCORE_TYPES

__all__ = ["Request", "parse_requests", "parse_pairs"]


@dataclass(frozen=True)
class Request:
    """One query's input, normalised: texts and metadata copies, the caller's documents as given."""

    query: str
    texts: list[str]
    metadata: list[dict[str, Any]]
    documents: Sequence[Any]
    first_stage: np.ndarray | None = None


def parse_requests(
    requests: object,
    first_stage_scores: object = None,
    *,
    fusing: float | str = 0.0,
) -> list[Request]:
    """Check ``(query, documents)`` requests and their optional retriever scores.

    Args:
        requests: A list of ``(query, documents)`` tuples.
        first_stage_scores: None, or one entry per request: that request's scores or None.
        fusing: The first-stage weight in force; a number above 0 needs scores for every
            request (``"auto"`` fuses the requests that have them).
    """
    if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence):
        raise InvalidInputTypeError(f"requests must be a list of (query, documents) tuples; received {describe(requests)}")
    if first_stage_scores is not None:
        if isinstance(first_stage_scores, (str, bytes, Mapping)) or not isinstance(first_stage_scores, Sequence):
            raise InvalidInputTypeError(
                f"first_stage_scores must be a list with one entry per request; received {describe(first_stage_scores)}"
            )
        if len(first_stage_scores) != len(requests):
            raise InvalidInputError(
                f"first_stage_scores must have one entry per request: expected {len(requests)}, received {len(first_stage_scores)}"
            )
    parsed: list[Request] = []
    for position, request in enumerate(requests):
        if not isinstance(request, (tuple, list)) or len(request) != 2:
            raise InvalidInputTypeError(f"request {position} must be a (query, documents) tuple; received {describe(request)}")
        query = validate_query(request[0])
        documents = request[1]
        if isinstance(documents, Iterator):
            documents = list(documents)  # a generator can be read once; the fallback may need it again
        texts, metadata = normalize_documents(documents)
        scores = None if first_stage_scores is None else first_stage_scores[position]
        retrieved = _first_stage_scores(scores, len(texts), position)
        if retrieved is None and fusing != "auto" and float(fusing) > 0.0:
            raise InvalidInputError(
                f"first_stage_weight={fusing:g} fuses the retriever's scores into the order, so request "
                f"{position} needs first_stage_scores (one per document); received none"
            )
        parsed.append(Request(query, texts, metadata, documents, retrieved))
    return parsed


def parse_pairs(pairs: object) -> tuple[list[str], list[str], list[int]]:
    """Check ``(query, document)`` pairs: distinct queries, texts, and each pair's query index."""
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise InvalidInputTypeError(f"pairs must be a list of (query, document) tuples; received {describe(pairs)}")
    query_index: dict[str, int] = {}
    queries: list[str] = []
    documents: list[Any] = []
    query_of_pair: list[int] = []
    for position, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise InvalidInputTypeError(f"pair {position} must be a (query, document) tuple; received {describe(pair)}")
        query = validate_query(pair[0])
        if query not in query_index:
            query_index[query] = len(queries)
            queries.append(query)
        query_of_pair.append(query_index[query])
        documents.append(pair[1])
    texts, _ = normalize_documents(documents)
    return queries, texts, query_of_pair


def _first_stage_scores(scores: object, documents: int, position: int) -> np.ndarray | None:
    """One request's retriever scores as a float array, checked against its document count."""
    if scores is None:
        return None
    if isinstance(scores, (str, bytes, Mapping)) or not isinstance(scores, (Sequence, np.ndarray)):
        raise InvalidInputTypeError(
            f"first_stage_scores of request {position} must be a list of numbers, one per document; received {describe(scores)}"
        )
    values = []
    for index, value in enumerate(scores):
        if isinstance(value, bool) or not isinstance(value, SCORE_TYPES):
            raise InvalidInputTypeError(
                f"first_stage_scores of request {position}: document {index} must have a number; received {describe(value)}"
            )
        if not math.isfinite(float(value)):
            raise InvalidInputError(
                f"first_stage_scores of request {position}: document {index} must have a finite number; received {value!r}"
            )
        values.append(float(value))
    if len(values) != documents:
        raise InvalidInputError(
            f"first_stage_scores of request {position} must hold one score per document: expected {documents}, received {len(values)}"
        )
    return np.asarray(values, dtype=np.float64)
