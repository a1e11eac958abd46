"""Query-level abstention: deciding from a query's whole score list that nothing answers it.

Two rule kinds are understood (stored as JSON objects in ``calibration.json``):

* ``{"kind": "max-score", "min_top_score": t}`` abstains when the best calibrated score is below ``t``.
* ``{"kind": "logistic", "features": [...], "weights": [...], "bias": b, "min_probability": p}``
  estimates the probability that the query is answerable from features of its score list and
  abstains below ``p``. Features: ``top_logit`` (best raw score), ``gap_logit`` (best minus
  second-best raw score, 0 with one candidate), ``spread_logit`` (standard deviation of the raw
  scores), ``top_probability`` (best calibrated score).

:func:`fit_logistic_rule` fits the second kind from labelled queries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from crossrank.errors import ConfigurationError, InvalidInputError

__all__ = ["ABSTENTION_KINDS", "QUERY_FEATURES", "answer_probability", "fit_logistic_rule", "query_features", "should_abstain"]

ABSTENTION_KINDS = ("max-score", "logistic")
QUERY_FEATURES = ("top_logit", "gap_logit", "spread_logit", "top_probability")


def query_features(ranked_probabilities: np.ndarray, ranked_logits: np.ndarray) -> dict[str, float]:
    """Features of one query's scores (both sorted best first; must be non-empty)."""
    logits = np.asarray(ranked_logits, dtype=np.float64)
    probabilities = np.asarray(ranked_probabilities, dtype=np.float64)
    return {
        "top_logit": float(logits[0]),
        "gap_logit": float(logits[0] - logits[1]) if logits.size > 1 else 0.0,
        "spread_logit": float(np.std(logits)),
        "top_probability": float(probabilities[0]),
    }


def _check_logistic(rule: Mapping[str, Any]) -> tuple[list[str], np.ndarray, float, float]:
    features, weights, bias, minimum = rule.get("features"), rule.get("weights"), rule.get("bias"), rule.get("min_probability")
    if not isinstance(features, list) or not features or any(f not in QUERY_FEATURES for f in features):
        raise ConfigurationError(f"logistic abstention needs 'features', a non-empty list from {QUERY_FEATURES}; received {features!r}")
    if not isinstance(weights, list) or len(weights) != len(features) or not all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in weights
    ):
        raise ConfigurationError(f"logistic abstention needs one finite weight per feature; received {weights!r}")
    if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias):
        raise ConfigurationError(f"logistic abstention needs a finite 'bias'; received {bias!r}")
    if isinstance(minimum, bool) or not isinstance(minimum, (int, float)) or not 0.0 <= float(minimum) <= 1.0:
        raise ConfigurationError(f"logistic abstention needs min_probability in [0, 1]; received {minimum!r}")
    return features, np.asarray(weights, dtype=np.float64), float(bias), float(minimum)


def answer_probability(rule: Mapping[str, Any], ranked_probabilities: np.ndarray, ranked_logits: np.ndarray) -> float:
    """The fitted probability that a query is answerable, for a ``logistic`` rule."""
    features, weights, bias, _ = _check_logistic(rule)
    if len(ranked_logits) == 0:
        return 0.0
    values = query_features(ranked_probabilities, ranked_logits)
    z = float(np.dot(weights, [values[f] for f in features]) + bias)
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def should_abstain(rule: Mapping[str, Any], ranked_probabilities: np.ndarray, ranked_logits: np.ndarray) -> bool:
    """Apply a fitted abstention rule to one query's scores (sorted best first)."""
    kind = rule.get("kind")
    if kind == "max-score":
        minimum = rule.get("min_top_score")
        if not isinstance(minimum, (int, float)) or not 0.0 <= float(minimum) <= 1.0:
            raise ConfigurationError(f"max-score abstention needs min_top_score in [0, 1]; received {minimum!r}")
        return len(ranked_probabilities) == 0 or float(ranked_probabilities[0]) < float(minimum)
    if kind == "logistic":
        _, _, _, minimum = _check_logistic(rule)
        return len(ranked_logits) == 0 or answer_probability(rule, ranked_probabilities, ranked_logits) < minimum
    raise ConfigurationError(f"unknown abstention rule kind {kind!r}; known kinds: {ABSTENTION_KINDS}")


def fit_logistic_rule(
    ranked_scores: Sequence[tuple[np.ndarray, np.ndarray]],
    answerable: Sequence[bool],
    *,
    features: Sequence[str] = ("top_logit", "gap_logit", "spread_logit"),
    min_probability: float = 0.5,
    l2: float = 1e-3,
) -> dict[str, Any]:
    """Fit a ``logistic`` abstention rule by regularised maximum likelihood.

    Args:
        ranked_scores: Per query, ``(probabilities, logits)`` sorted best first.
        answerable: Per query, whether it has an answer.
        features: Which :data:`QUERY_FEATURES` to use.
        min_probability: The cut stored in the rule (choose it afterwards with a constraint).
        l2: Ridge penalty on the (standardised) weights.

    Returns:
        The rule as a JSON-ready dict.
    """
    if len(ranked_scores) != len(answerable) or not ranked_scores:
        raise InvalidInputError(f"need one label per query; received {len(ranked_scores)} queries and {len(answerable)} labels")
    unknown = [f for f in features if f not in QUERY_FEATURES]
    if unknown or not features:
        raise InvalidInputError(f"features must come from {QUERY_FEATURES}; received {list(features)}")
    rows = [query_features(p, z) for p, z in ranked_scores if len(z)]
    if len(rows) != len(ranked_scores):
        raise InvalidInputError("every query needs at least one scored candidate")
    x = np.array([[row[f] for f in features] for row in rows], dtype=np.float64)
    y = np.asarray(answerable, dtype=np.float64)
    if y.min() == y.max():
        raise InvalidInputError("need both answerable and unanswerable queries to fit an abstention rule")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    xs = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(xs.shape[1])
    penalty = np.full(xs.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(xs @ w, -500, 500)))
        grad = xs.T @ (p - y) + penalty * w
        hess = xs.T @ (xs * (p * (1 - p))[:, None]) + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    weights = w[:-1] / scale
    bias = float(w[-1] - np.sum(w[:-1] * mean / scale))
    return {
        "kind": "logistic",
        "features": list(features),
        "weights": [float(v) for v in weights],
        "bias": bias,
        "min_probability": float(min_probability),
    }
