"""Drift warning: are this deployment's queries scored like the ones the calibration was fitted on?

A calibration maps logits to probabilities correctly only for score distributions like the one
it was fitted on. When it is fitted, crossrank records the distribution of each query's top raw
score (:func:`reference_distribution`: quintile edges and the share of queries in each bin). At
run time a :class:`DriftMonitor` keeps the last ``window`` queries' top scores and computes the
population stability index (PSI) between them and the recorded shares:

    PSI = sum over bins of (live - fitted) * ln(live / fitted)

When the window is full and the PSI exceeds ``bound`` (default 0.2, the usual "significant
shift" level), the monitor logs one WARNING pointing to recalibration (at most once per
``warn_every`` queries) and each result's ``stats.score_drift`` carries the PSI.

The bound holds against sampling noise only when both sides are large enough, so a monitor
runs only for references of at least :data:`MIN_REFERENCE_QUERIES` (200) queries, with a
window of 300 queries and five quantile bins. In 200 simulated trials per setting (normal top
scores; ``tests/test_drift.py`` repeats seeded ones), the largest PSI an unshifted
stream of 2,000 queries reached was 0.197 with a 200-query reference and 0.171 with 300, so
the 0.2 bound raised no false alarm; a shift of the mean top score by 0.75 standard deviations
exceeded it in every trial, and by 0.5 in 74% of them.

Cost per query: one binary search and a counter update.

Example:
    >>> import numpy as np
    >>> from crossrank.drift import DriftMonitor, reference_distribution
    >>> fitted = reference_distribution(np.random.default_rng(0).normal(size=500))
    >>> monitor = DriftMonitor(fitted)
    >>> psi = [monitor.observe(x) for x in np.random.default_rng(1).normal(size=300)][-1]
    >>> psi < 0.2
    True
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from crossrank.errors import ConfigurationError, describe

__all__ = [
    "DEFAULT_BOUND",
    "DEFAULT_WINDOW",
    "MIN_REFERENCE_QUERIES",
    "DriftMonitor",
    "REFERENCE_KEY",
    "monitor_for",
    "psi",
    "reference_distribution",
]

logger = logging.getLogger("crossrank")

REFERENCE_KEY = "top_score_distribution"
"""Where a calibration's provenance keeps its reference distribution."""

DEFAULT_BOUND = 0.2
DEFAULT_WINDOW = 300
MIN_REFERENCE_QUERIES = 200
_BINS = 5
_FLOOR = 1e-4  # an empty bin counts as this share, so the logarithm stays finite


def reference_distribution(top_scores: Sequence[float] | np.ndarray, bins: int = _BINS) -> dict[str, Any]:
    """Quantile edges of per-query top raw scores and the share of queries in each bin.

    Args:
        top_scores: Each fitting query's highest raw score (logit).
        bins: Number of quantile bins.
    """
    values = np.asarray(top_scores, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2 * bins:
        raise ConfigurationError(f"a reference distribution needs at least {2 * bins} queries; received {values.size}")
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return {"edges": [float(e) for e in edges], "shares": [float(c) / values.size for c in counts], "queries": int(values.size)}


def psi(live: Sequence[float] | np.ndarray, fitted: Sequence[float] | np.ndarray) -> float:
    """The population stability index between two vectors of bin shares."""
    p = np.maximum(np.asarray(live, dtype=np.float64), _FLOOR)
    q = np.maximum(np.asarray(fitted, dtype=np.float64), _FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


def _checked(reference: object) -> tuple[list[float], list[float]]:
    if not isinstance(reference, Mapping):
        raise ConfigurationError(f"{REFERENCE_KEY} must be an object with edges and shares; received {describe(reference)}")
    edges, shares = reference.get("edges"), reference.get("shares")
    if (
        not isinstance(edges, list)
        or not isinstance(shares, list)
        or len(shares) != len(edges) + 1
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in [*edges, *shares])
        or edges != sorted(edges)
        or any(s < 0 for s in shares)
        or not math.isclose(sum(shares), 1.0, abs_tol=1e-6)
    ):
        raise ConfigurationError(
            f"{REFERENCE_KEY} must hold sorted finite edges and one share per bin summing to 1; received {describe(reference)}"
        )
    return [float(e) for e in edges], [float(s) for s in shares]


class DriftMonitor:
    """Tracks the last ``window`` queries' top raw scores against a fitted reference.

    Thread-safe; :meth:`observe` returns the current PSI once the window is full (None before).
    """

    def __init__(
        self,
        reference: Mapping[str, Any],
        *,
        window: int = DEFAULT_WINDOW,
        bound: float = DEFAULT_BOUND,
        warn_every: int = 1000,
        name: str = "",
    ) -> None:
        self.edges, self.shares = _checked(reference)
        self.window, self.bound, self.warn_every, self.name = window, bound, warn_every, name
        self._bins: deque[int] = deque(maxlen=window)
        self._counts = [0] * len(self.shares)
        self._lock = threading.Lock()
        self._since_warning: int | None = None
        self.last_psi: float | None = None

    def observe(self, top_score: float) -> float | None:
        """Record one query's top raw score; the PSI of the window once it is full."""
        if not math.isfinite(top_score):
            return self.last_psi
        index = bisect.bisect_right(self.edges, top_score)
        with self._lock:
            if len(self._bins) == self.window:
                self._counts[self._bins[0]] -= 1
            self._bins.append(index)
            self._counts[index] += 1
            if len(self._bins) < self.window:
                return None
            value = psi([c / self.window for c in self._counts], self.shares)
            self.last_psi = value
            warn = False
            if value > self.bound:
                if self._since_warning is None or self._since_warning >= self.warn_every:
                    warn, self._since_warning = True, 0
                else:
                    self._since_warning += 1
            elif self._since_warning is not None:
                self._since_warning += 1
        if warn:
            logger.warning(
                "score drift%s: the top scores of the last %d queries differ from those the calibration was fitted on "
                "(population stability index %.3f > %.2f); its probabilities and threshold may be off for these queries. "
                "Recalibrate on labelled queries of this domain: crossrank calibrate",
                f" for {self.name}" if self.name else "", self.window, value, self.bound,
            )
        return value


def monitor_for(provenance: Mapping[str, Any], name: str = "") -> DriftMonitor | None:
    """A monitor for a calibration's recorded reference, or None when it has none large enough."""
    reference = provenance.get(REFERENCE_KEY)
    if reference is None:
        return None
    if not isinstance(reference, Mapping) or not isinstance(reference.get("queries"), int):
        raise ConfigurationError(f"{REFERENCE_KEY} must record its number of queries; received {describe(reference)}")
    if reference["queries"] < MIN_REFERENCE_QUERIES:
        logger.debug("no drift monitoring: the calibration's reference has %d queries (< %d)", reference["queries"], MIN_REFERENCE_QUERIES)
        return None
    return DriftMonitor(reference, name=name)
