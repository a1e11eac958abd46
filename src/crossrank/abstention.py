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
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from crossrank.errors import ConfigurationError, InvalidInputError, describe

__all__ = [
    "ABSTENTION_KINDS",
    "QUERY_FEATURES",
    "answer_probability",
    "fit_logistic_rule",
    "query_features",
    "should_abstain",
    "validate_rule",
]

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


_RULE_FIELDS = {
    "max-score": ("kind", "min_top_score"),
    "logistic": ("kind", "features", "weights", "bias", "min_probability"),
}
# Largest magnitude a feature can take: logits are float32, so a logit, the gap between two
# logits or their spread stays below twice the float32 maximum; a probability stays in [0, 1].
_FEATURE_BOUNDS = {
    "top_logit": 2.0 * float(np.finfo(np.float32).max),
    "gap_logit": 2.0 * float(np.finfo(np.float32).max),
    "spread_logit": 2.0 * float(np.finfo(np.float32).max),
    "top_probability": 1.0,
}


def _field_error(where: str, message: str) -> ConfigurationError:
    return ConfigurationError(f"field '{where}': {message}")


def _number(value: object, where: str, *, unit_interval: bool = False) -> float:
    """A finite real number (a bool is refused: ``true`` must not read as 1.0)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        expected = "a number in [0, 1]" if unit_interval else "a finite number"
        raise _field_error(where, f"expected {expected}; received {describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _field_error(where, f"expected a finite number; received {value!r}")
    if unit_interval and not 0.0 <= number <= 1.0:
        raise _field_error(where, f"expected a number in [0, 1]; received {value!r}")
    return number


def validate_rule(rule: object, where: str = "abstention") -> dict[str, Any]:
    """Check every field of an abstention rule and return it as a plain dict.

    Args:
        rule: The rule as read from JSON.
        where: The rule's place in its file, used in error messages (``abstention``).

    Raises:
        ConfigurationError: Naming the field (``abstention.min_top_score``) and what it holds:
            an unknown ``kind``, a missing or unknown field, a value of the wrong type or
            range, or logistic weights so large that a score could make the rule non-finite.

    Example:
        >>> validate_rule({"kind": "max-score", "min_top_score": 0.3})
        {'kind': 'max-score', 'min_top_score': 0.3}
    """
    if not isinstance(rule, Mapping):
        raise _field_error(where, f"expected an object or null; received {describe(rule)}")
    kind = rule.get("kind")
    if not isinstance(kind, str) or kind not in _RULE_FIELDS:
        raise _field_error(f"{where}.kind", f"unknown abstention rule kind {kind!r}; known kinds: {list(ABSTENTION_KINDS)}")
    expected = _RULE_FIELDS[kind]
    unknown = sorted(str(key) for key in rule if key not in expected)
    if unknown:
        raise _field_error(where, f"unknown fields {unknown} for a {kind!r} rule; expected {list(expected)}")
    missing = [key for key in expected if key not in rule]
    if missing:
        raise _field_error(f"{where}.{missing[0]}", f"missing; a {kind!r} rule needs {list(expected)}")
    if kind == "max-score":
        return {"kind": kind, "min_top_score": _number(rule["min_top_score"], f"{where}.min_top_score", unit_interval=True)}
    features, weights = rule["features"], rule["weights"]
    if not isinstance(features, list) or not features:
        raise _field_error(f"{where}.features", f"expected a non-empty list from {list(QUERY_FEATURES)}; received {describe(features)}")
    for position, feature in enumerate(features):
        if not isinstance(feature, str) or feature not in QUERY_FEATURES:
            raise _field_error(f"{where}.features[{position}]", f"unknown feature {feature!r}; known features: {list(QUERY_FEATURES)}")
    if len(set(features)) != len(features):
        raise _field_error(f"{where}.features", f"a feature is listed twice: {features}")
    if not isinstance(weights, list) or len(weights) != len(features):
        raise _field_error(
            f"{where}.weights", f"expected a list with one finite weight per feature ({len(features)}); received {describe(weights)}"
        )
    checked = [_number(weight, f"{where}.weights[{position}]") for position, weight in enumerate(weights)]
    bias = _number(rule["bias"], f"{where}.bias")
    # The largest |w . x + b| any float32 scores can produce must be finite, or the rule's
    # probability can become NaN (and a NaN probability never abstains).
    with np.errstate(over="ignore"):
        largest = float(np.sum(np.abs(checked) * np.array([_FEATURE_BOUNDS[f] for f in features])) + abs(bias))
    if not math.isfinite(largest):
        raise _field_error(
            f"{where}.weights", f"weights {weights} are so large that a score gives a non-finite product; refit the rule"
        )
    return {
        "kind": kind,
        "features": list(features),
        "weights": checked,
        "bias": bias,
        "min_probability": _number(rule["min_probability"], f"{where}.min_probability", unit_interval=True),
    }


def answer_probability(rule: Mapping[str, Any], ranked_probabilities: np.ndarray, ranked_logits: np.ndarray) -> float:
    """The fitted probability that a query is answerable, for a ``logistic`` rule."""
    checked = validate_rule(rule)
    if checked["kind"] != "logistic":
        raise ConfigurationError(f"answer_probability needs a 'logistic' rule; received kind {checked['kind']!r}")
    if len(ranked_logits) == 0:
        return 0.0
    values = query_features(ranked_probabilities, ranked_logits)
    z = float(np.dot(checked["weights"], [values[f] for f in checked["features"]]) + checked["bias"])
    if math.isnan(z):
        return 0.0  # non-finite scores give no evidence that the query is answerable
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def should_abstain(rule: Mapping[str, Any], ranked_probabilities: np.ndarray, ranked_logits: np.ndarray) -> bool:
    """Apply a fitted abstention rule to one query's scores (sorted best first)."""
    checked = validate_rule(rule)
    if checked["kind"] == "max-score":
        return len(ranked_probabilities) == 0 or float(ranked_probabilities[0]) < checked["min_top_score"]
    return len(ranked_logits) == 0 or answer_probability(checked, ranked_probabilities, ranked_logits) < checked["min_probability"]


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
