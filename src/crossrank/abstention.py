"""Query-level abstention: deciding from a query's whole score list that nothing answers it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from crossrank.errors import ConfigurationError

__all__ = ["should_abstain", "ABSTENTION_KINDS"]

ABSTENTION_KINDS = ("max-score",)


def should_abstain(rule: Mapping[str, Any], ranked_probabilities: np.ndarray, ranked_logits: np.ndarray) -> bool:
    """Apply a fitted abstention rule to one query's scores (sorted best first).

    ``{"kind": "max-score", "min_top_score": t}`` abstains when the best calibrated score is
    below ``t``.
    """
    kind = rule.get("kind")
    if kind == "max-score":
        minimum = rule.get("min_top_score")
        if not isinstance(minimum, (int, float)) or not 0.0 <= float(minimum) <= 1.0:
            raise ConfigurationError(f"max-score abstention needs min_top_score in [0, 1]; received {minimum!r}")
        return len(ranked_probabilities) == 0 or float(ranked_probabilities[0]) < float(minimum)
    raise ConfigurationError(f"unknown abstention rule kind {kind!r}; known kinds: {ABSTENTION_KINDS}")
