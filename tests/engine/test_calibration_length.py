"""With no max_length given, a model runs at the length its calibration was fitted at."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crossrank import Reranker
from crossrank.calibration import Calibration, PlattCalibrator, save_calibration
from crossrank.engine.loading import calibration_length


def _model_with_calibration(source: Path, target: Path, *, length: int, model: str | None) -> Path:
    shutil.copytree(source, target)
    probe = Reranker(str(target))
    probe.warm_up()
    name = model if model is not None else f"{probe.loaded.config.name}@{probe.loaded.config.revision}"
    calibration = Calibration(PlattCalibrator(a=1.0, b=0.0), provenance={"scorer": {"model": name, "max_length": length}})
    save_calibration(calibration, target / "calibration.json")
    return target


def test_the_default_length_is_the_calibrations(tiny_model_dir: Path, tmp_path: Path) -> None:
    default = Reranker(str(tiny_model_dir))
    default.warm_up()
    unfitted = default.loaded.encoder.max_length
    folder = _model_with_calibration(tiny_model_dir, tmp_path / "m", length=24, model=None)
    reranker = Reranker(str(folder))
    reranker.warm_up()
    assert unfitted != 24 and reranker.loaded.encoder.max_length == 24
    assert reranker.loaded.identity()["max_length"] == 24
    # An explicit length (argument, environment or file) still wins.
    explicit = Reranker(str(folder), max_length=32)
    explicit.warm_up()
    assert explicit.loaded.encoder.max_length == 32


@pytest.mark.parametrize(("length", "model"), [(24, "another-model@v1"), (100_000, None), (4, None)])
def test_a_calibration_of_another_model_or_length_out_of_range_is_not_followed(
    tiny_model_dir: Path, tmp_path: Path, length: int, model: str | None
) -> None:
    default = Reranker(str(tiny_model_dir))
    default.warm_up()
    folder = _model_with_calibration(tiny_model_dir, tmp_path / "m", length=length, model=model)
    reranker = Reranker(str(folder))
    reranker.warm_up()
    assert reranker.loaded.encoder.max_length == default.loaded.encoder.max_length


def test_calibration_length_reads_only_a_recorded_int() -> None:
    from crossrank.models.config import ModelConfig

    config = ModelConfig(name="m", revision="r")
    assert calibration_length(Calibration(), config, 512) is None
    assert calibration_length(Calibration(provenance={"scorer": {"max_length": "192"}}), config, 512) is None
    assert calibration_length(Calibration(provenance={"scorer": {"max_length": True}}), config, 512) is None
    assert calibration_length(Calibration(provenance={"scorer": {"max_length": 192}}), config, 512) == 192
    assert calibration_length(Calibration(provenance={"scorer": {"max_length": 192, "model": "m@r+per-tensor"}}), config, 512) == 192
    assert calibration_length(Calibration(provenance={"scorer": {"max_length": 192, "model": "other@r"}}), config, 512) is None


def test_an_int8_model_runs_per_tensor_when_its_calibration_was_fitted_so(tiny_int8_model_dir: Path, tmp_path: Path) -> None:
    from crossrank.models.config import ModelConfig

    folder = tmp_path / "m"
    shutil.copytree(tiny_int8_model_dir, folder)
    ModelConfig(name="tiny-int8", onnx_file="model.onnx", quantization="dynamic-int8").save(folder)
    per_token = Reranker(str(folder))
    per_token.warm_up()
    assert per_token.loaded.activation_quantization is None  # a dynamic int8 model runs per token by default
    name = f"{per_token.loaded.config.name}@{per_token.loaded.config.revision}"
    calibration = Calibration(
        PlattCalibrator(a=1.0, b=0.0), provenance={"scorer": {"model": name, "activation_quantization": "per-tensor"}}
    )
    save_calibration(calibration, folder / "calibration.json")
    fitted = Reranker(str(folder))
    fitted.warm_up()
    assert fitted.loaded.activation_quantization == "per-tensor"
    explicit = Reranker(str(folder), backend_options={"activation_quantization": "per-token"})
    explicit.warm_up()
    assert explicit.loaded.activation_quantization is None


def test_calibrated_backend_options_only_fill_what_is_not_given() -> None:
    from crossrank.engine.loading import calibrated_backend_options
    from crossrank.models.config import ModelConfig

    config = ModelConfig(name="m", revision="r", quantization="dynamic-int8")
    per_tensor = Calibration(provenance={"scorer": {"model": "m@r", "activation_quantization": "per-tensor"}})
    assert calibrated_backend_options("onnx", {}, per_tensor, config) == {"activation_quantization": "per-tensor"}
    assert calibrated_backend_options("onnx", {"num_threads": 1}, per_tensor, config) == {
        "num_threads": 1, "activation_quantization": "per-tensor"}
    assert calibrated_backend_options("onnx", {"activation_quantization": "per-token"}, per_tensor, config) == {
        "activation_quantization": "per-token"}
    assert calibrated_backend_options("torch", {}, per_tensor, config) == {}
    assert calibrated_backend_options("onnx", {}, Calibration(), config) == {}
    other = Calibration(provenance={"scorer": {"model": "other@r", "activation_quantization": "per-tensor"}})
    assert calibrated_backend_options("onnx", {}, other, config) == {}
    fp32 = ModelConfig(name="m", revision="r", quantization="none")
    assert calibrated_backend_options("onnx", {}, per_tensor, fp32) == {}
