"""Calibrators: fitting recovers known parameters, JSON round-trips, versions are checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crossrank.calibration import (
    Calibration,
    IsotonicCalibrator,
    PlattCalibrator,
    TemperatureCalibrator,
    fit_calibrator,
    fit_isotonic,
    fit_platt,
    fit_temperature,
    load_calibration,
    save_calibration,
)
from crossrank.errors import ConfigurationError, InvalidInputError


def _synthetic(a: float, b: float, n: int = 40_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, n)
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-(a * logits + b)))).astype(float)
    return logits, labels


def test_platt_recovers_known_parameters() -> None:
    logits, labels = _synthetic(0.5, -1.0)
    fitted = fit_platt(logits, labels)
    assert fitted.a == pytest.approx(0.5, abs=0.03)
    assert fitted.b == pytest.approx(-1.0, abs=0.06)


def test_temperature_recovers_known_temperature() -> None:
    logits, labels = _synthetic(1 / 2.5, 0.0)
    assert fit_temperature(logits, labels).temperature == pytest.approx(2.5, rel=0.05)


def test_isotonic_is_monotone_and_tracks_the_true_curve() -> None:
    logits, labels = _synthetic(0.5, -1.0)
    fitted = fit_isotonic(logits, labels, min_block=200)
    assert np.all(np.diff(fitted.values) >= 0)
    grid = np.linspace(-6, 6, 25)
    truth = 1 / (1 + np.exp(-(0.5 * grid - 1.0)))
    assert np.max(np.abs(fitted.transform(grid) - truth)) < 0.06


def test_isotonic_pools_violators_by_hand() -> None:
    # Labels 0,1,0,1 on increasing logits: the middle pair pools to 0.5 at logit 1.5.
    fitted = fit_isotonic([0.0, 1.0, 2.0, 3.0], [0, 1, 0, 1])
    assert fitted.knots.tolist() == [0.0, 1.5, 3.0]
    assert fitted.values.tolist() == [0.0, 0.5, 1.0]
    assert fitted.transform(np.array([-10.0, 0.75, 10.0])).tolist() == [0.0, 0.25, 1.0]


def test_isotonic_gives_equal_logits_one_value() -> None:
    fitted = fit_isotonic([1.0, 1.0, 1.0, 2.0], [0, 1, 1, 1])
    assert fitted.transform(np.array([1.0]))[0] == pytest.approx(2 / 3)


@pytest.mark.parametrize("kind", ["platt", "temperature", "isotonic"])
def test_fit_calibrator_by_kind(kind: str) -> None:
    logits, labels = _synthetic(0.8, 0.3, n=2000)
    calibrator = fit_calibrator(kind, logits, labels)
    assert calibrator.kind == kind
    p = calibrator.transform(logits)
    assert np.all((p >= 0) & (p <= 1))


def test_fitting_rejects_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="both relevant and non-relevant"):
        fit_platt([1.0, 2.0, 3.0], [1, 1, 1])
    with pytest.raises(InvalidInputError, match="one label per logit"):
        fit_isotonic([1.0, 2.0], [1])
    with pytest.raises(ConfigurationError, match="fittable kinds"):
        fit_calibrator("sigmoid", [1.0, 2.0], [0, 1])


@pytest.mark.parametrize(
    "calibrator",
    [PlattCalibrator(0.7, -1.2), TemperatureCalibrator(1.7), IsotonicCalibrator([-1.0, 0.5, 2.0], [0.05, 0.3, 0.95])],
)
def test_calibration_json_round_trip(tmp_path, calibrator) -> None:
    calibration = Calibration(
        calibrator=calibrator,
        threshold=0.42,
        abstention={"kind": "max-score", "min_top_score": 0.42},
        provenance={"fitted_on": "synthetic"},
    )
    path = save_calibration(calibration, tmp_path / "calibration.json")
    loaded = load_calibration(path)
    assert loaded.to_dict() == calibration.to_dict()
    x = np.linspace(-3, 3, 7)
    assert np.allclose(loaded.calibrator.transform(x), calibrator.transform(x))


def test_calibration_version_is_checked(tmp_path) -> None:
    data = Calibration(calibrator=PlattCalibrator(1.0, 0.0)).to_dict()
    data["version"] = 99
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError, match="unsupported calibration format version"):
        load_calibration(path)


def test_isotonic_parameters_are_validated() -> None:
    with pytest.raises(ConfigurationError, match="strictly increasing"):
        IsotonicCalibrator([0.0, 0.0], [0.1, 0.2])
    with pytest.raises(ConfigurationError, match="non-decreasing"):
        IsotonicCalibrator([0.0, 1.0], [0.5, 0.2])
    with pytest.raises(ConfigurationError, match="lists"):
        IsotonicCalibrator.from_params({"knots": 1, "values": [0.5]})
