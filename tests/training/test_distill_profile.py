"""One command from an int8 ONNX teacher to a registered speed profile: ``crossrank distill --profile``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("bm25s")

from crossrank import Reranker  # noqa: E402
from crossrank.cli import main  # noqa: E402
from crossrank.errors import ModelNotFoundError  # noqa: E402
from crossrank.training.distill import float_teacher  # noqa: E402
from crossrank.training.export import export_onnx, onnx_model_folder, quantize_int8  # noqa: E402

from synthetic_judgments import write_synthetic  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def int8_teacher(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as users get a teacher: an int8 ONNX graph and a tokenizer, no float weights."""
    work = tmp_path_factory.mktemp("int8-teacher")
    fp32 = export_onnx(tiny_model_dir, work / "fp32.onnx")
    return onnx_model_folder(work / "teacher", quantize_int8(fp32, work / "teacher.onnx"), tiny_model_dir / "tokenizer.json", "dynamic-int8")


def test_float_teacher_uses_a_float_checkpoint_as_it_is_and_imports_an_onnx_one(
    tiny_model_dir: Path, int8_teacher: Path, tmp_path: Path
) -> None:
    assert float_teacher(str(tiny_model_dir), tmp_path / "unused") == tiny_model_dir
    assert not (tmp_path / "unused").exists()
    imported = float_teacher(str(int8_teacher), tmp_path / "teacher-float")
    assert imported == tmp_path / "teacher-float"
    config = json.loads((imported / "config.json").read_text())
    assert config["num_hidden_layers"] == json.loads((tiny_model_dir / "config.json").read_text())["num_hidden_layers"]
    assert (imported / "model.safetensors").is_file() and (imported / "tokenizer.json").is_file()
    # A second run reuses the import instead of redoing it.
    stamp = (imported / "model.safetensors").stat().st_mtime_ns
    assert float_teacher(str(int8_teacher), tmp_path / "teacher-float") == imported
    assert (imported / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ModelNotFoundError):
        float_teacher(str(tmp_path / "no-such-model"), tmp_path / "other")


def test_distill_from_an_int8_teacher_registers_a_speed_profile(
    isolated_home: Path, int8_teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_synthetic(tmp_path / "data")
    config = {
        "base_model": str(int8_teacher),  # no float checkpoint: distill imports the graph first
        "teacher": str(int8_teacher),
        "output_dir": str(tmp_path / "run"),
        "data": {"format": "beir", "path": str(data["beir"])},
        "dev_fraction": 0.25,
        "negatives": {"strategy": "bm25", "num_negatives": 3, "pool_size": 8},
        "loss": "margin_mse",
        "epochs": 1,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "max_length": 40,
        "dev_candidates": 8,
        "export_onnx": True,
        "quantize": True,
        "gate_tolerance": 1.0,
        "num_threads": 1,
        "activation_quantization": "per-tensor",  # gated and calibrated per tensor, so it runs per tensor
    }
    config_file = tmp_path / "distill.json"
    config_file.write_text(json.dumps(config))
    assert main(["distill", str(config_file), "--profile", "tiny-fast"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (tmp_path / "run" / "teacher-float" / "model.safetensors").is_file()
    student_layers = json.loads((Path(printed["model"]) / "config.json").read_text())["num_hidden_layers"]
    teacher_layers = json.loads((tmp_path / "run" / "teacher-float" / "config.json").read_text())["num_hidden_layers"]
    assert student_layers == (teacher_layers + 1) // 2
    reranker = Reranker(profile="tiny-fast")
    assert reranker.model_path == isolated_home / "profiles" / "tiny-fast"
    reranker.warm_up()
    # The student's own calibration was fitted at the run's max_length, so that is its default length.
    assert reranker.loaded.encoder.max_length == 40
    assert reranker.calibration.provenance["scorer"]["max_length"] == 40
    assert reranker.calibration.provenance["scorer"]["activation_quantization"] == "per-tensor"
    assert reranker.loaded.activation_quantization == "per-tensor"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["gate"]["passed"]
    result = reranker.rerank("a query", ["one passage", "another passage"])
    assert len(result) == 2 and all(0.0 <= doc.score <= 1.0 for doc in result)


def test_activation_quantization_is_validated(tiny_model_dir: Path) -> None:
    from crossrank.errors import ConfigurationError
    from crossrank.training.config import TrainConfig

    base = {"base_model": str(tiny_model_dir), "output_dir": "run", "data": {"format": "beir", "path": "data"}}
    assert TrainConfig.from_dict(base).activation_quantization == "per-token"
    with pytest.raises(ConfigurationError, match="activation_quantization must be per-token or per-tensor; received 'fast'"):
        TrainConfig.from_dict({**base, "activation_quantization": "fast"})
