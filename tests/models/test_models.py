"""Model configs, resolution order, cache layout and integrity checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from crossrank import ConfigurationError, ModelConfig, ModelIntegrityError, ModelNotFoundError, Reranker, resolve_model
from crossrank.models.resolve import cache_folder_for, cached_models


def test_model_config_round_trips_json(tmp_path: Path) -> None:
    config = ModelConfig(name="acme/x", onnx_file="model.onnx", revision="r1", quantization="per-token-int8", license="MIT", files={"model.onnx": "ab"})
    config.save(tmp_path)
    assert ModelConfig.load(tmp_path) == config
    assert ModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "unsupported model config version"),
        ({"surprise": 1}, "unknown keys"),
        ({"onnx_file": "../../etc/passwd"}, "inside the model folder"),
        ({"max_length": "512"}, "max_length"),
        ({"quantization": "int3"}, "quantization"),
    ],
)
def test_invalid_model_configs_are_refused(change: dict, message: str) -> None:
    data = {**ModelConfig(name="x").to_dict(), **change}
    with pytest.raises(ConfigurationError, match=message):
        ModelConfig.from_dict(data)


def test_detect_reads_a_plain_model_folder(tiny_model_dir: Path) -> None:
    config = ModelConfig.detect(tiny_model_dir)
    assert config.onnx_file == "model.onnx" and config.torch_weights == "model.safetensors"
    assert config.max_length == 128


def test_resolution_order_local_then_cache_then_hf_cache(tiny_model_dir: Path, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model(str(tiny_model_dir)).found_in == "local"
    hf_root = tmp_path / "hf"
    snapshot = hf_root / "models--acme--tiny" / "snapshots" / "abc123"
    shutil.copytree(tiny_model_dir, snapshot)
    (hf_root / "models--acme--tiny" / "refs").mkdir(parents=True)
    (hf_root / "models--acme--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_root))
    found = resolve_model("acme/tiny", allow_fetch=False)
    assert found.found_in == "huggingface-cache" and found.path == snapshot
    cached = cache_folder_for("acme/tiny")
    shutil.copytree(tiny_model_dir, cached)
    ModelConfig(name="acme/tiny", onnx_file="model.onnx", revision="cached").save(cached)
    found = resolve_model("acme/tiny", allow_fetch=False)
    assert found.found_in == "cache" and found.config.revision == "cached"
    assert [m.config.name for m in cached_models()] == ["acme/tiny"]


def test_missing_model_lists_what_was_tried(isolated_home: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("acme/absent", allow_fetch=False)
    assert "local folder" in str(info.value) and "crossrank cache" in str(info.value) and "Hugging Face cache" in str(info.value)


def test_constructor_does_not_load(isolated_home: Path) -> None:
    reranker = Reranker("acme/absent", allow_download=False)
    assert not reranker.is_loaded
    with pytest.raises(ModelNotFoundError):
        reranker.warm_up()


def test_modified_model_file_is_detected(tiny_model_copy: Path) -> None:
    config = ModelConfig.detect(tiny_model_copy, name="tiny")
    from crossrank.models.files import sha256_file

    config.files = {"model.onnx": sha256_file(tiny_model_copy / "model.onnx")}
    config.save(tiny_model_copy)
    Reranker(str(tiny_model_copy)).warm_up()
    with open(tiny_model_copy / "model.onnx", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(ModelIntegrityError, match="model.onnx"):
        Reranker(str(tiny_model_copy)).warm_up()


def test_folder_without_tokenizer_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="tokenizer.json"):
        Reranker(str(tmp_path)).warm_up()


def test_cache_names_are_safe() -> None:
    assert cache_folder_for("org/name").name == "org--name"
    with pytest.raises(ModelNotFoundError):
        cache_folder_for("..")
    assert json.dumps(str(cache_folder_for("a/b")))
