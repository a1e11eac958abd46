"""``crossrank export``: every family to ONNX, checked against torch, refused when the graph disagrees."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from family_models import CLASSIFIERS, DECODERS, PAIRS

from crossrank import Reranker
from crossrank.config import RerankerConfig
from crossrank.families.export import ExportParityError, GraphExporter, Int8GateError, export_model
from crossrank.models.config import ModelConfig

KINDS = [*CLASSIFIERS, "st", *sorted(DECODERS)]
ONNX_TOLERANCE = 1e-3
# int8 on tiny random models (scores spread over a few hundredths to a few units): the per-token int8
# scores may move by up to this share of the fp32 scores' spread, and keep this share of pair orders.
INT8_SPREAD_SHARE = 0.5
INT8_AGREEMENT = 0.75


def _family(kind: str) -> str | None:
    return DECODERS.get(kind)


def _reranker(folder: Path, **options: object) -> Reranker:
    return Reranker.from_config(RerankerConfig(model=str(folder), long_documents="truncate", allow_download=False, **options))  # type: ignore[arg-type]


def _agreement(reference: np.ndarray, other: np.ndarray) -> float:
    i, j = np.triu_indices(len(reference), k=1)
    sign = np.sign(reference[i] - reference[j])
    return float(np.mean(np.sign(other[i] - other[j])[sign != 0] == sign[sign != 0]))


@pytest.mark.parametrize("kind", KINDS)
def test_exported_graph_scores_as_torch(family_model: Callable[[str], Path], tmp_path: Path, kind: str) -> None:
    folder = family_model(kind)
    result = export_model(folder, tmp_path / "onnx", family=_family(kind))
    config = ModelConfig.load(result.folder)
    assert config.family == result.family == (_family(kind) or ("sentence-transformers" if kind == "st" else "classifier"))
    assert config.onnx_file == "model.onnx" and config.torch_weights is None and config.quantization == "none"
    import onnx

    graph = onnx.load(str(result.folder / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["logits"]
    assert {i.name for i in graph.input} <= {"input_ids", "attention_mask", "token_type_ids"}  # no KV cache, no position ids
    # The ONNX folder needs no family= (recorded) and scores as the torch model does, batched and alone.
    onnx_reranker = _reranker(result.folder)
    assert onnx_reranker.backend_name == "onnx"
    torch_scores = _reranker(folder, backend="torch", family=_family(kind)).score(PAIRS, raw=True)
    np.testing.assert_allclose(onnx_reranker.score(PAIRS, raw=True), torch_scores, atol=ONNX_TOLERANCE)
    alone = np.array([onnx_reranker.score([pair], raw=True)[0] for pair in PAIRS])
    np.testing.assert_allclose(alone, torch_scores, atol=ONNX_TOLERANCE)


def _int8_check(folder: Path, tmp_path: Path, kind: str) -> None:
    result = export_model(
        folder, tmp_path / "int8", quantize="int8", family=_family(kind),
        int8_tolerance=INT8_SPREAD_SHARE, int8_agreement=INT8_AGREEMENT,
    )
    assert result.quantization == "dynamic-int8" and result.int8 is not None and result.int8.passed
    int8 = _reranker(result.folder)
    assert int8.quantization == "per-token-int8"  # rewritten per token at load: batch-invariant
    fp32 = _reranker(folder, backend="torch", family=_family(kind)).score(PAIRS, raw=True)
    scores = int8.score(PAIRS, raw=True)
    assert np.abs(scores - fp32).max() <= INT8_SPREAD_SHARE * np.ptp(fp32)
    assert _agreement(fp32, scores) >= INT8_AGREEMENT
    alone = np.array([int8.score([pair], raw=True)[0] for pair in PAIRS])
    np.testing.assert_allclose(alone, scores, atol=1e-5)
    assert ModelConfig.load(result.folder).extra["export"]["int8_gate"]["passed"] is True


@pytest.mark.parametrize("kind", ["bert", "qwen3"])
def test_int8_export_keeps_the_order_within_the_stated_tolerance(family_model: Callable[[str], Path], tmp_path: Path, kind: str) -> None:
    _int8_check(family_model(kind), tmp_path, kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", [k for k in KINDS if k not in ("bert", "qwen3")])
def test_int8_export_of_every_family(family_model: Callable[[str], Path], tmp_path: Path, kind: str) -> None:
    _int8_check(family_model(kind), tmp_path, kind)


def test_the_int8_gate_refuses_what_moves_too_much(family_model: Callable[[str], Path], tmp_path: Path) -> None:
    with pytest.raises(Int8GateError, match="the int8 model was not published"):
        export_model(family_model("bert"), tmp_path / "strict", quantize="int8", int8_tolerance=1e-9, int8_agreement=1.0)
    assert not (tmp_path / "strict").exists()


class PositionalTrace(GraphExporter):
    """Traces ModernBERT the old way: (ids, mask, zeros) by position, so the zeros become position_ids."""

    def trace(self, path: Path) -> None:
        import torch

        model = self.module().hf_model
        input_ids, attention_mask, _ = self.probe_batch()
        ids, mask = torch.from_numpy(input_ids), torch.from_numpy(attention_mask)
        dynamic = {0: "batch", 1: "sequence"}
        torch.onnx.export(
            model, (ids, mask, torch.zeros_like(ids)), str(path), input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"], dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "token_type_ids": dynamic},
            opset_version=17, dynamo=False,
        )


def test_a_graph_that_disagrees_with_torch_is_never_written(family_model: Callable[[str], Path], tmp_path: Path) -> None:
    exporter = PositionalTrace(family_model("modernbert"))
    with pytest.raises(ExportParityError, match="disagrees with the PyTorch model .* the graph was not written"):
        exporter.export(tmp_path / "wrong")
    assert not (tmp_path / "wrong").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".wrong")]  # no staging folder left behind
    with pytest.raises(ExportParityError):
        exporter.write_graph(tmp_path / "graph" / "model.onnx")
    assert not (tmp_path / "graph" / "model.onnx").exists()


def test_export_command_writes_a_loadable_folder(family_model: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from crossrank.cli import main

    out = tmp_path / "cli"
    code = main(["export", str(family_model("qwen2")), "--out", str(out), "--family", "mxbai-rerank-v2", "--instruction", "find facts", "--format", "json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["family"] == "mxbai-rerank-v2" and report["fp32_parity"]["passed"] and report["fp32_parity"]["max_abs_diff"] <= ONNX_TOLERANCE
    loaded = _reranker(out).loaded
    assert (loaded.family.name, loaded.instruction) == ("mxbai-rerank-v2", "find facts")
    # An existing folder is not overwritten without --force; a refusal exits 2 with one line.
    assert main(["export", str(family_model("qwen2")), "--out", str(out), "--family", "mxbai-rerank-v2"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


def test_the_trainer_export_is_the_same_checked_export(family_model: Callable[[str], Path], tmp_path: Path) -> None:
    from crossrank.training.export import export_onnx, onnx_model_folder

    folder = family_model("gemma")
    graph = export_onnx(folder, tmp_path / "fp32" / "model.onnx", family="bge-llm-reranker")
    onnx_model_folder(tmp_path / "fp32", graph, folder / "tokenizer.json", "none", family="bge-llm-reranker")
    expected = _reranker(folder, backend="torch", family="bge-llm-reranker").score(PAIRS, raw=True)
    np.testing.assert_allclose(_reranker(tmp_path / "fp32").score(PAIRS, raw=True), expected, atol=ONNX_TOLERANCE)
