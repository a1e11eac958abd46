"""ONNX graphs with external data load from their own folder whatever the working directory, or are refused clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from crossrank import ModelIntegrityError, Reranker, resolve_model
from crossrank.models.files import model_fingerprint, onnx_external_data

from tiny_models import quantize_dynamic

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "the cat and the dog", "berlin is a large city"]


def _external_copy(graph: Path, tiny_model_dir: Path, folder: Path, location: str = "model.onnx.data") -> Path:
    import onnx

    folder.mkdir(parents=True)
    for name in ("tokenizer.json", "config.json"):
        shutil.copy(tiny_model_dir / name, folder / name)
    model = onnx.load(str(graph))
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return folder


@pytest.fixture()
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cwd = tmp_path / "somewhere-else"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture()
def float_external(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return _external_copy(tiny_model_dir / "model.onnx", tiny_model_dir, tmp_path / "float-external")


def test_a_float_graph_with_external_data_scores_like_the_inline_graph(
    float_external: Path, tiny_model_dir: Path, tmp_path: Path, elsewhere: Path
) -> None:
    inline = tmp_path / "inline"
    inline.mkdir()
    for name in ("tokenizer.json", "config.json", "model.onnx"):
        shutil.copy(tiny_model_dir / name, inline / name)
    expected = Reranker(str(inline), backend="onnx", cache=None).rerank(QUERY, DOCS)
    result = Reranker(str(float_external), backend="onnx", cache=None).rerank(QUERY, DOCS)
    assert [d.index for d in result] == [d.index for d in expected]
    np.testing.assert_allclose([d.score for d in result], [d.score for d in expected], atol=1e-6)
    assert onnx_external_data(float_external / "model.onnx", float_external) == ("model.onnx.data",)


def test_the_fingerprint_covers_external_data(float_external: Path) -> None:
    config = resolve_model(str(float_external)).config
    before = model_fingerprint(float_external, config)
    with open(float_external / "model.onnx.data", "r+b") as handle:
        handle.seek(64)
        handle.write(b"\x01\x02\x03\x04")
    assert model_fingerprint(float_external, config) != before


@pytest.mark.parametrize("inside", [True, False], ids=["cwd-is-the-folder", "cwd-elsewhere"])
def test_a_dynamic_int8_graph_with_external_data_is_refused_naming_the_file(
    tiny_model_dir: Path, tmp_path: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch, inside: bool
) -> None:
    quantized = quantize_dynamic(tiny_model_dir / "model.onnx", tmp_path / "int8.onnx")
    folder = _external_copy(quantized, tiny_model_dir, tmp_path / "int8-external")
    if inside:
        monkeypatch.chdir(folder)
    with pytest.raises(ModelIntegrityError, match="external data") as info:
        Reranker(str(folder), cache=None).warm_up()
    assert str(folder / "model.onnx") in str(info.value) and "model.onnx.data" in str(info.value)


def test_external_data_outside_the_folder_is_refused(float_external: Path, elsewhere: Path) -> None:
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    model = onnx.load(str(float_external / "model.onnx"), load_external_data=False)
    for tensor in _get_all_tensors(model):
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../outside.data"
    onnx.save_model(model, str(float_external / "model.onnx"))
    shutil.move(float_external / "model.onnx.data", float_external.parent / "outside.data")
    with pytest.raises(ModelIntegrityError, match="outside the model folder") as info:
        Reranker(str(float_external), backend="onnx", cache=None).warm_up()
    assert "../outside.data" in str(info.value)


def test_missing_external_data_is_refused_naming_it(float_external: Path, elsewhere: Path) -> None:
    (float_external / "model.onnx.data").unlink()
    with pytest.raises(ModelIntegrityError, match="model.onnx.data, which is missing"):
        Reranker(str(float_external), backend="onnx", cache=None).warm_up()
