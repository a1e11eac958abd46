"""A malformed crossrank.json (or config.json) field is refused at load, naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossrank import ConfigurationError, CrossRankError, ModelConfig, ModelIntegrityError, Reranker


def _write(folder: Path, data: object) -> Path:
    path = folder / "crossrank.json"
    path.write_text(json.dumps(data))
    return path


def _valid() -> dict:
    return ModelConfig(name="tiny", onnx_file="model.onnx", torch_weights="model.safetensors").to_dict()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("files", ["model.onnx"]),
        ("files", "model.onnx"),
        ("files", {"model.onnx": 5}),
        ("files", {"model.onnx": "not-a-digest"}),
        ("extra", []),
        ("extra", "notes"),
        ("extra", {"original_graph": 5}),
        ("tokenizer_file", 5),
        ("tokenizer_file", ""),
        ("onnx_file", ["model.onnx"]),
        ("torch_weights", {"path": "model.safetensors"}),
        ("name", 7),
        ("revision", None),
        ("license", 5),
        ("origin", {}),
        ("quantization", ["none"]),
        ("max_length", None),
    ],
)
def test_a_malformed_field_is_refused_naming_file_and_field(tiny_model_copy: Path, field: str, value: object) -> None:
    data = _valid()
    if field == "extra" and isinstance(value, dict):
        data["extra"] = value
        shown = "extra.original_graph"
    else:
        data[field] = value
        shown = field
    path = _write(tiny_model_copy, data)
    with pytest.raises(ConfigurationError) as info:
        Reranker(str(tiny_model_copy), cache=None).warm_up()
    message = str(info.value)
    assert str(path) in message and shown in message, message


def test_a_missing_name_is_refused(tiny_model_copy: Path) -> None:
    data = _valid()
    del data["name"]
    path = _write(tiny_model_copy, data)
    with pytest.raises(ConfigurationError, match="name is missing") as info:
        Reranker(str(tiny_model_copy), cache=None).warm_up()
    assert str(path) in str(info.value)


@pytest.mark.parametrize("data", [[], "crossrank-model", 5, None])
def test_a_config_that_is_not_an_object_is_refused(tiny_model_copy: Path, data: object) -> None:
    path = _write(tiny_model_copy, data)
    with pytest.raises(ConfigurationError, match="not a crossrank model config") as info:
        Reranker(str(tiny_model_copy), cache=None).warm_up()
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[1, 2]", "must hold a JSON object"),
        ('{"max_position_embeddings": null}', "max_position_embeddings"),
        ('{"max_position_embeddings": "lots"}', "max_position_embeddings"),
    ],
)
def test_a_malformed_hugging_face_config_names_the_file(tiny_model_copy: Path, content: str, expected: str) -> None:
    path = tiny_model_copy / "config.json"
    path.write_text(content)
    with pytest.raises(ModelIntegrityError, match=expected) as info:
        Reranker(str(tiny_model_copy), backend="onnx", cache=None).warm_up()
    assert str(path) in str(info.value)
    assert isinstance(info.value, CrossRankError)
