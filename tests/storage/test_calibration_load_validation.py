"""A calibration file is validated completely when it is loaded; every error names the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossrank import ConfigurationError, ModelIntegrityError, Reranker, load_calibration
from crossrank.abstention import fit_logistic_rule, should_abstain
from crossrank.calibration import Calibration, packaged_calibration


def _calibration(abstention: Any = None, **top: Any) -> dict[str, Any]:
    return {
        "format": "crossrank-calibration",
        "version": 1,
        "calibrator": {"kind": "platt", "a": 1.0, "b": 0.0},
        "threshold": 0.4,
        "abstention": abstention,
        "provenance": {},
        **top,
    }


LOGISTIC = {"kind": "logistic", "features": ["top_logit", "gap_logit"], "weights": [1.0, 0.5], "bias": -1.0, "min_probability": 0.5}


@pytest.mark.parametrize(
    ("data", "field", "expected"),
    [
        (_calibration({"kind": "rm -rf /"}), "abstention.kind", "unknown abstention rule kind 'rm -rf /'"),
        (_calibration({"min_top_score": 0.5}), "abstention.kind", "unknown abstention rule kind None"),
        (_calibration({"kind": "max-score", "min_top_score": True}), "abstention.min_top_score", "received bool True"),
        (_calibration({"kind": "max-score", "min_top_score": "0.5"}), "abstention.min_top_score", "received str"),
        (_calibration({"kind": "max-score", "min_top_score": 1.5}), "abstention.min_top_score", "in [0, 1]"),
        (_calibration({"kind": "max-score"}), "abstention.min_top_score", "missing"),
        (_calibration({"kind": "max-score", "min_top_score": 0.5, "exec": "x"}), "abstention", "unknown fields ['exec']"),
        (_calibration({**LOGISTIC, "weights": [1e308, 1.0]}), "abstention.weights", "non-finite"),
        (_calibration({**LOGISTIC, "weights": [1.0, float("nan")]}), "abstention.weights[1]", "finite number"),
        (_calibration({**LOGISTIC, "weights": [1.0, True]}), "abstention.weights[1]", "received bool"),
        (_calibration({**LOGISTIC, "weights": [1.0]}), "abstention.weights", "one finite weight per feature"),
        (_calibration({**LOGISTIC, "features": ["top_logit", "os.system"]}), "abstention.features[1]", "unknown feature 'os.system'"),
        (_calibration({**LOGISTIC, "features": ["top_logit", "top_logit"]}), "abstention.features", "twice"),
        (_calibration({**LOGISTIC, "min_probability": None}), "abstention.min_probability", "received NoneType"),
        (_calibration({**LOGISTIC, "extra": 1}), "abstention", "unknown fields ['extra']"),
        (_calibration(version=True), "version", "received bool True"),
        (_calibration(threshold=True), "threshold", "received bool True"),
        (_calibration(provenance=[1]), "provenance", "must be an object"),
    ],
)
def test_tampered_fields_are_refused_naming_file_and_field(tmp_path: Path, data: dict, field: str, expected: str) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError) as info:
        load_calibration(path)
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message and expected in message, message


def test_a_tampered_rule_stops_the_model_loading(tiny_model_copy: Path) -> None:
    path = tiny_model_copy / "calibration.json"
    path.write_text(json.dumps(_calibration({"kind": "rm -rf /"})))
    with pytest.raises(ConfigurationError, match="abstention.kind"):
        Reranker(str(tiny_model_copy)).warm_up()


@pytest.mark.parametrize(
    "text",
    ['{"format": ' + "[" * 100_000 + "]" * 100_000 + "}", '{"format": "crossrank-calibration", "version": ' + "1" * 5000 + "}"],
    ids=["deep-nesting", "huge-int"],
)
def test_hostile_json_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(text)
    with pytest.raises(ModelIntegrityError, match=f"cannot read calibration file {path}"):
        load_calibration(path)


def test_rules_built_in_code_are_validated_too() -> None:
    with pytest.raises(ConfigurationError, match="abstention.min_top_score"):
        Calibration(abstention={"kind": "max-score", "min_top_score": True})


def test_fitted_and_shipped_rules_still_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scores = [(np.sort(rng.random(5))[::-1], np.sort(rng.normal(size=5))[::-1] + shift) for shift in (2.0, -2.0) * 10]
    rule = fit_logistic_rule(scores, [True, False] * 10)
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(_calibration(rule)))
    loaded = load_calibration(path)
    assert loaded.abstention == rule
    assert should_abstain(loaded.abstention, *scores[1]) and not should_abstain(loaded.abstention, *scores[0])
    shipped = Path(__file__).resolve().parents[2] / "src" / "crossrank" / "calibrations"
    for file in shipped.glob("*.json"):
        assert load_calibration(file).abstention is not None
    assert packaged_calibration(object()) is None
