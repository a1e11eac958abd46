"""Fusing the reranker's scores with the first-stage retriever's scores for the final order.

A cross-encoder trained on one domain ranks topically close passages of another domain nearly
alike; the retriever's own score still carries evidence the reranker lacks. Interpolating the
two after putting each on a common scale (per-query z-scores) keeps the reranker's judgement
while letting a strong first stage break its near-ties. On SciFact test the embedded model alone
does no better than the BM25 it reranks (nDCG@10 0.677 vs 0.676); fused with weight 0.3, chosen
on train claims, it reaches 0.709 (BENCHMARKS.md, section ``fusion-scifact``).

Only the order changes: calibrated probabilities, thresholds and abstention still read the
reranker's own scores, so "nothing here is relevant" means the same with or without fusion.

Example:
    >>> from crossrank.fusion import fuse_scores
    >>> fuse_scores([2.0, 1.9, -3.0], [5.0, 11.0, 4.0], first_stage_weight=0.3).round(3).tolist()
    [0.348, 0.9, -1.249]
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Sequence

import numpy as np

from crossrank.errors import InvalidInputError, InvalidInputTypeError, describe

__all__ = [
    "AUTO",
    "AUTO_WEIGHT",
    "SCORE_TYPES",
    "applied_weight",
    "fuse_scores",
    "retriever_scores",
    "validate_first_stage_weight",
    "zscore",
]

logger = logging.getLogger("crossrank")

AUTO = "auto"
"""``first_stage_weight="auto"`` (the default): fuse with :data:`AUTO_WEIGHT` when every
candidate carries a finite retriever score, rerank alone otherwise."""

AUTO_WEIGHT = 0.3
"""The weight ``"auto"`` fuses with: chosen on SciFact train claims; on SciFact test, Cranfield
and two collections never used in development it did not lower nDCG@10 (BENCHMARKS.md)."""

SCORE_TYPES = (int, float, np.integer, np.floating)
"""What counts as a number for a retriever score (bool excluded): Python's and NumPy's, since
frameworks hand over either (a Haystack ``Document.score`` may be a ``numpy.float32``)."""


def validate_first_stage_weight(weight: object, *, allow_auto: bool = False) -> float | str:
    """``weight`` as a float in [0, 1] (or ``"auto"`` where allowed), or a typed error saying what was received."""
    if allow_auto and isinstance(weight, str) and weight.strip().lower() == AUTO:
        return AUTO
    if isinstance(weight, bool) or type(weight).__name__ == "bool_" or not isinstance(weight, numbers.Real):
        expected = "a number in [0, 1] or 'auto'" if allow_auto else "a number in [0, 1]"
        raise InvalidInputTypeError(f"first_stage_weight must be {expected}; received {type(weight).__name__} {weight!r}")
    value = float(weight)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"first_stage_weight must be in [0, 1]; received {weight!r}")
    return value


def applied_weight(weight: float | str, has_scores: bool) -> float:
    """The weight a query is fused with: ``"auto"`` is :data:`AUTO_WEIGHT` when the query has scores, else 0."""
    if weight == AUTO:
        return AUTO_WEIGHT if has_scores else 0.0
    return float(weight) if has_scores else 0.0


def retriever_scores(values: Sequence[object], *, weight: float | str, where: str) -> list[float] | None:
    """The retriever's scores read from each document's own field, when ``weight`` fuses them.

    ``values`` holds what each document carries there (None where it has nothing); ``where``
    names that field for the error. With ``weight`` 0 they are not read at all and the result is
    None. With ``"auto"``, they are used when every document has a finite number, and otherwise
    the reranker orders alone (a DEBUG line says why). With a weight above 0, a document without
    a finite number is an error that names the document, never a silent fall-back to the
    reranker alone.
    """
    if weight != AUTO and float(weight) <= 0.0:
        return None
    missing = [
        i for i, value in enumerate(values)
        if isinstance(value, bool) or not isinstance(value, SCORE_TYPES) or not math.isfinite(value)
    ]
    if missing and weight == AUTO:
        logger.debug(
            "first_stage_weight='auto': %d of %d documents have no finite number in %s, so the reranker orders alone",
            len(missing), len(values), where,
        )
        return None
    if missing:
        raise InvalidInputError(
            f"first_stage_weight={weight:g} fuses the retriever's scores into the order, "
            f"but {len(missing)} of {len(values)} documents have no finite number in {where} "
            f"(first: document {missing[0]}, {describe(values[missing[0]])})"
        )
    return [float(value) for value in values]  # type: ignore[arg-type]


def zscore(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over one query's list; all zeros when the list does not vary."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return array
    spread = float(array.std())
    # Relative to the values' size: the mean of equal large numbers carries rounding error, and
    # dividing that error by itself would invent an order.
    if np.ptp(array) == 0.0 or not math.isfinite(spread) or spread <= 1e-12 * max(1.0, float(np.abs(array).max())):
        # One candidate, or all tied: the list carries no order to contribute.
        return np.zeros_like(array)
    return (array - array.mean()) / spread


def fuse_scores(
    reranker_scores: Sequence[float] | np.ndarray,
    first_stage_scores: Sequence[float] | np.ndarray,
    *,
    first_stage_weight: float,
) -> np.ndarray:
    """``(1 - w) * z(reranker) + w * z(first stage)`` for one query's candidates.

    Args:
        reranker_scores: The reranker's raw scores (logits) of the query's candidates.
        first_stage_scores: The retriever's scores of the same candidates, in the same order
            (BM25 scores, cosine similarities, ...); any scale, higher is better.
        first_stage_weight: ``w`` in [0, 1]; 0 ranks by the reranker alone, 1 by the retriever.

    Returns:
        The fused scores, in input order (higher is better).

    Raises:
        InvalidInputError: lengths differ, a score is not finite, or ``w`` is outside [0, 1].
    """
    weight = validate_first_stage_weight(first_stage_weight)
    model = np.asarray(reranker_scores, dtype=np.float64)
    first = np.asarray(first_stage_scores, dtype=np.float64)
    if model.shape != first.shape or model.ndim != 1:
        raise InvalidInputError(
            f"first-stage scores must be one per candidate: expected {model.size}, received {first.size}"
        )
    if not np.all(np.isfinite(first)):
        bad = int(np.flatnonzero(~np.isfinite(first))[0])
        raise InvalidInputError(f"first-stage scores must be finite numbers; candidate {bad} has {float(first[bad])!r}")
    return (1.0 - weight) * zscore(model) + weight * zscore(first)
