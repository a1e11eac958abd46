"""``crossrank import-onnx``: float checkpoints rebuilt from fp32 and int8 ONNX graphs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_models import build_tiny_bert, export_onnx, quantize_dynamic

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from crossrank.training.onnx_import import compare_with_onnx, import_onnx, kendall_tau

from crossrank.errors import ConfigurationError, ModelIntegrityError

PAIRS = [
    ("what is the capital of france", ["paris is the capital of france", "berlin is in germany", "the river is long"]),
    ("how many people live in berlin", ["berlin population is large", "the cat is red", "paris museum"]),
]


def _state(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def _torch_logits(folder: Path, ids: np.ndarray) -> np.ndarray:
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(str(folder), attn_implementation="eager").eval()
    with torch.inference_mode():
        out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.ones_like(torch.from_numpy(ids)))
    return out.logits.numpy()


@pytest.fixture(scope="module")
def int8_folder(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-int8-import")
    quantize_dynamic(tiny_model_dir / "model.onnx", folder / "model.onnx")
    (folder / "tokenizer.json").write_bytes((tiny_model_dir / "tokenizer.json").read_bytes())
    return folder


def test_fp32_graph_is_rebuilt_exactly(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "fp32-only"
    source.mkdir()
    (source / "model.onnx").write_bytes((tiny_model_dir / "model.onnx").read_bytes())
    (source / "tokenizer.json").write_bytes((tiny_model_dir / "tokenizer.json").read_bytes())
    report = import_onnx(source, tmp_path / "rebuilt")
    original, rebuilt = _state(tiny_model_dir), _state(tmp_path / "rebuilt")
    assert report.dequantized == []
    for name, value in rebuilt.items():
        np.testing.assert_allclose(value, original[name], atol=1e-6, err_msg=name)
    assert report.config["num_attention_heads"] == 2  # read from the graph: no config.json in the source
    ids = np.array([[2, 10, 11, 12, 3, 20, 21, 3]], dtype=np.int64)
    np.testing.assert_allclose(_torch_logits(tmp_path / "rebuilt", ids), _torch_logits(tiny_model_dir, ids), atol=1e-5)


def test_int8_graph_is_dequantized_within_one_quantization_step(tiny_model_dir: Path, int8_folder: Path, tmp_path: Path) -> None:
    report = import_onnx(int8_folder, tmp_path / "rebuilt")
    original, rebuilt = _state(tiny_model_dir), _state(tmp_path / "rebuilt")
    assert set(rebuilt) >= {n for n in original if not n.endswith("position_ids")} - {"bert.embeddings.token_type_embeddings.weight"}
    assert "bert.encoder.layer.1.attention.self.query.weight" in report.dequantized
    assert "classifier.weight" in report.dequantized
    for name in report.dequantized:
        step = np.abs(original[name]).max() / 127  # symmetric int8: one level
        error = np.abs(rebuilt[name] - original[name]).max()
        assert error <= step * 0.51 + 1e-6, name
    assert not np.array_equal(rebuilt["classifier.weight"], original["classifier.weight"])  # lossy
    config = json.loads((tmp_path / "rebuilt" / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and config["hidden_size"] == 32


def test_rebuilt_model_matches_the_int8_graph_on_pairs(int8_folder: Path, tmp_path: Path) -> None:
    import_onnx(int8_folder, tmp_path / "rebuilt")
    report = compare_with_onnx(tmp_path / "rebuilt", int8_folder / "model.onnx", PAIRS, max_length=64)
    assert report.pairs == 6 and report.queries == 2
    assert 0 < report.mean_abs_logit_diff <= report.max_abs_logit_diff < 0.5
    assert report.mean_kendall_tau > 0.3
    # The rebuilt float model loads through the Reranker (crossrank.json written by the import).
    from crossrank import Reranker

    query, documents = PAIRS[0]
    scores = Reranker(str(tmp_path / "rebuilt"), backend="torch").score([(query, documents[0])], raw=True)
    assert np.isfinite(scores).all()


def test_refuses_to_overwrite_and_rejects_non_bert_graphs(int8_folder: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="not empty"):
        import_onnx(int8_folder, tmp_path / "taken")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "relu.onnx"))
    with pytest.raises(ModelIntegrityError, match="BERT cross-encoder"):
        import_onnx(tmp_path / "relu.onnx", tmp_path / "out")


def test_kendall_tau() -> None:
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau([1, 2, 3], [30, 20, 10]) == -1.0
    assert -1 < kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) < 1


def test_cli_import_onnx(int8_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from crossrank.cli import main

    assert main(["import-onnx", str(int8_folder), str(tmp_path / "cli-out")]) == 0
    assert "lossy" in capsys.readouterr().out
    assert (tmp_path / "cli-out" / "model.safetensors").is_file()
    assert main(["import-onnx", str(int8_folder), str(tmp_path / "cli-out")]) == 2  # exists, no --overwrite


def test_seed_changes_weights_so_the_comparison_can_fail(tmp_path: Path) -> None:
    # A different model's int8 graph must not look like a faithful import of this one.
    other = build_tiny_bert(tmp_path / "other", seed=1)
    export_onnx(other)
    quantize_dynamic(other / "model.onnx", tmp_path / "other-int8.onnx")
    mine = build_tiny_bert(tmp_path / "mine", seed=0)
    report = compare_with_onnx(mine, tmp_path / "other-int8.onnx", PAIRS, max_length=64)
    assert report.mean_abs_logit_diff > 0.5


@pytest.mark.slow
@pytest.mark.embedded
def test_embedded_model_import(embedded_model_dir: Path, tmp_path: Path) -> None:
    report = import_onnx(embedded_model_dir, tmp_path / "l12")
    assert report.config["num_hidden_layers"] == 12 and report.config["num_attention_heads"] == 12
    assert len(report.dequantized) == 77  # 72 encoder matrices, 3 embedding tables, pooler, classifier
    groups = [("what causes malaria", ["Malaria is caused by Plasmodium parasites transmitted by mosquitoes.",
                                        "The stock market fell sharply on Monday."])]
    for graph in ("original/model.onnx", "model.onnx"):
        comparison = compare_with_onnx(tmp_path / "l12", embedded_model_dir / graph, groups, max_length=128)
        assert comparison.max_abs_logit_diff < 1.0 and comparison.top1_agreement == 1.0
