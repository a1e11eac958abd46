"""Paired significance tests between two runs, on per-query metric values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from crossrank.errors import InvalidInputError

__all__ = ["PairedTest", "paired_bootstrap", "randomization_test"]


@dataclass(frozen=True)
class PairedTest:
    """Result of a two-sided paired test of ``mean(b - a) == 0``."""

    test: str
    mean_a: float
    mean_b: float
    difference: float
    p_value: float
    samples: int
    queries: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _paired(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        raise InvalidInputError(f"paired tests need the same queries in both runs; {len(only)} differ, e.g. {only[0]!r}")
    if not a:
        raise InvalidInputError("paired tests need at least one query")
    keys = sorted(a)
    return np.array([a[k] for k in keys], dtype=np.float64), np.array([b[k] for k in keys], dtype=np.float64)


def paired_bootstrap(a: Mapping[str, float], b: Mapping[str, float], *, samples: int = 10_000, seed: int = 0) -> PairedTest:
    """Paired bootstrap test: resample queries, count how often the resampled mean difference
    lies as far from the observed one as zero does (shift method, two-sided)."""
    x, y = _paired(a, b)
    diff = y - x
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(samples, diff.size))].mean(axis=1)
    observed = diff.mean()
    # Under the null the centred bootstrap distribution is shifted to mean zero.
    p = (np.sum(np.abs(means - observed) >= abs(observed) - 1e-15) + 1) / (samples + 1)
    return PairedTest("paired-bootstrap", float(x.mean()), float(y.mean()), float(observed), float(min(p, 1.0)), samples, int(diff.size))


def randomization_test(a: Mapping[str, float], b: Mapping[str, float], *, samples: int = 10_000, seed: int = 0) -> PairedTest:
    """Paired randomisation (permutation) test: flip the sign of each query's difference at random."""
    x, y = _paired(a, b)
    diff = y - x
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(samples, diff.size))
    means = (signs * diff).mean(axis=1)
    observed = abs(diff.mean())
    p = (np.sum(np.abs(means) >= observed - 1e-15) + 1) / (samples + 1)
    return PairedTest("randomization", float(x.mean()), float(y.mean()), float(diff.mean()), float(min(p, 1.0)), samples, int(diff.size))
