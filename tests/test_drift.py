"""Drift warning: the top-score distribution of served queries against the calibration's fitting data."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from crossrank import ConfigurationError, Reranker
from crossrank.calibration import Calibration, PlattCalibrator
from crossrank.config import RerankerConfig
from crossrank.drift import DEFAULT_BOUND, REFERENCE_KEY, DriftMonitor, monitor_for, reference_distribution


@pytest.mark.parametrize("seed", range(5))
def test_no_false_alarm_on_an_unshifted_stream(seed: int, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(seed)
    monitor = DriftMonitor(reference_distribution(rng.normal(size=300)))
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        values = [monitor.observe(x) for x in rng.normal(size=2000)]
    full = [v for v in values if v is not None]
    assert len(full) == 2000 - 299 and max(full) <= DEFAULT_BOUND
    assert not caplog.records


def test_a_shifted_stream_warns_once_per_period(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(7)
    monitor = DriftMonitor(reference_distribution(rng.normal(size=300)), warn_every=1000)
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        values = [monitor.observe(x) for x in rng.normal(loc=1.0, size=1500)]
    assert values[-1] is not None and values[-1] > 0.5
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2  # at the first full window, then after 1,000 more queries
    assert "crossrank calibrate" in warnings[0]


def test_references_are_checked_and_small_ones_not_monitored() -> None:
    small = reference_distribution(np.arange(50.0))
    assert monitor_for({REFERENCE_KEY: small}) is None
    assert monitor_for({}) is None
    with pytest.raises(ConfigurationError, match="edges and one share per bin"):
        DriftMonitor({"edges": [1.0, 0.0], "shares": [0.3, 0.3, 0.4], "queries": 500})
    with pytest.raises(ConfigurationError, match="at least"):
        reference_distribution([1.0, 2.0])


def test_the_engine_reports_drift_in_stats(tiny_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    reference = reference_distribution(np.random.default_rng(0).normal(loc=-20.0, size=400))
    calibration = Calibration(PlattCalibrator(1.0, 0.0), provenance={REFERENCE_KEY: reference})
    reranker = Reranker.from_config(RerankerConfig(model=str(tiny_model_dir), calibration=calibration))
    documents = ["paris is the capital of france", "the cat and the dog"]
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        drifts = [reranker.rerank(f"query {i}", documents).stats.score_drift for i in range(301)]
    assert drifts[0] is None and drifts[-1] is not None and drifts[-1] > DEFAULT_BOUND
    assert sum("score drift" in r.getMessage() for r in caplog.records) == 1
    plain = Reranker.from_config(RerankerConfig(model=str(tiny_model_dir)))
    assert plain.rerank("q", documents).stats.score_drift is None
