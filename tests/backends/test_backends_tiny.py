"""Both backends on a tiny real model: same scores, batch invariance, int8 rewrite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossrank import Reranker

QUERIES = ["what is the capital of france", "how many people live in berlin"]
DOCS = [
    "paris is the capital of france",
    "berlin is a large city in germany with many people",
    "the cat and the dog",
    "a long river of water runs through the city of paris in france " * 3,
    "gene protein cell science",
    "",
]


def _pairs() -> list[tuple[str, str]]:
    return [(q, d) for q in QUERIES for d in DOCS]


def test_onnx_and_torch_agree_within_1e3(tiny_model_dir: Path) -> None:
    onnx_scores = Reranker(str(tiny_model_dir), backend="onnx").score(_pairs(), raw=True)
    torch_scores = Reranker(str(tiny_model_dir), backend="torch").score(_pairs(), raw=True)
    assert onnx_scores.shape == (len(_pairs()),)
    assert np.std(onnx_scores) > 1e-3, "the tiny model should not score every pair the same"
    np.testing.assert_allclose(onnx_scores, torch_scores, atol=1e-3)


def test_auto_backend_prefers_onnx(tiny_model_dir: Path) -> None:
    reranker = Reranker(str(tiny_model_dir)).warm_up()
    assert reranker.backend_name == "onnx"


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_scores_are_batch_invariant(tiny_model_dir: Path, backend: str) -> None:
    pairs = _pairs()
    batched = Reranker(str(tiny_model_dir), backend=backend, batch_size=32).score(pairs, raw=True)
    alone = np.array([Reranker(str(tiny_model_dir), backend=backend).score([p], raw=True)[0] for p in pairs])
    np.testing.assert_allclose(batched, alone, atol=1e-4)


def test_dynamic_int8_graph_is_rewritten_and_batch_invariant(tiny_int8_model_dir: Path, tiny_model_dir: Path) -> None:
    import onnx
    import onnxruntime as ort

    pairs = _pairs()
    reranker = Reranker(str(tiny_int8_model_dir), batch_size=32).warm_up()
    backend = reranker._load().backend
    assert backend.quantization == "per-token-int8"
    assert backend.batch_invariant
    batched = reranker.score(pairs, raw=True)
    alone = np.array([reranker.score([p], raw=True)[0] for p in pairs])
    np.testing.assert_allclose(batched, alone, atol=1e-4)
    # The rewrite stays close to the fp32 model it was quantized from.
    fp32 = Reranker(str(tiny_model_dir), backend="onnx").score(pairs, raw=True)
    assert np.corrcoef(batched, fp32)[0, 1] > 0.98
    # And the unmodified per-tensor graph really is batch-dependent, which is why the rewrite exists.
    assert any(n.op_type == "DynamicQuantizeLinear" for n in onnx.load(str(tiny_int8_model_dir / "model.onnx")).graph.node)
    del ort


def test_per_tensor_activation_quantization_scores_each_pair_alone(tiny_int8_model_dir: Path) -> None:
    pairs = _pairs()
    per_tensor = Reranker(str(tiny_int8_model_dir), batch_size=32, backend_options={"activation_quantization": "per-tensor"}).warm_up()
    backend = per_tensor._load().backend
    assert backend.quantization == "dynamic-int8" and not backend.batch_invariant
    batched = per_tensor.score(pairs, raw=True)
    alone = np.array([per_tensor.score([p], raw=True)[0] for p in pairs])
    assert batched.tolist() == alone.tolist()  # each pair runs on its own, unpadded: identical, not just close
    per_token = Reranker(str(tiny_int8_model_dir), batch_size=32).score(pairs, raw=True)
    assert not np.allclose(batched, per_token, atol=1e-7), "the option must load a differently quantized graph"
    # Two quantizations of the same weights: close, though one scale per tensor is coarser.
    assert np.corrcoef(batched, per_token)[0, 1] > 0.95
    stats = per_tensor.rerank(QUERIES[0], DOCS).stats
    assert len(stats.batches) == len(DOCS) and all(shape.rows == 1 for shape in stats.batches)


def test_activation_quantization_option_is_validated(tiny_int8_model_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from crossrank.errors import ConfigurationError
    from crossrank.models.config import ModelConfig

    with pytest.raises(ConfigurationError, match="activation_quantization must be one of \\('auto', 'per-token', 'per-tensor'\\); received 'per-row'"):
        Reranker(str(tiny_int8_model_dir), backend_options={"activation_quantization": "per-row"}).warm_up()
    # A folder whose graph is already per token and that records no original graph cannot go back.
    folder = tmp_path / "per-token-only"
    shutil.copytree(tiny_int8_model_dir, folder)
    ModelConfig(name="tiny", onnx_file="model.onnx", quantization="per-token-int8").save(folder)
    with pytest.raises(ConfigurationError, match="records no hash-pinned original graph"):
        Reranker(str(folder), backend_options={"activation_quantization": "per-tensor"}).warm_up()
    # A float graph has nothing to quantize: the option leaves it as it is.
    fp32 = Reranker(str(tiny_model_dir), backend="onnx", backend_options={"activation_quantization": "per-tensor"}).warm_up()
    assert fp32._load().backend.quantization == "none"


def test_rows_scored_alone_run_concurrently_with_identical_scores(tiny_int8_model_dir: Path) -> None:
    from crossrank.backends.onnx_backend import usable_cores

    pairs = _pairs() * 3
    options = {"activation_quantization": "per-tensor"}
    default = Reranker(str(tiny_int8_model_dir), backend_options=options).warm_up()
    # One call per core by default when rows run alone on the CPU.
    assert default._load().backend.concurrent_calls == usable_cores()
    one = Reranker(str(tiny_int8_model_dir), backend_options={**options, "concurrent_calls": 1}).warm_up()
    three = Reranker(str(tiny_int8_model_dir), backend_options={**options, "concurrent_calls": 3}).warm_up()
    assert one._load().backend.concurrent_calls == 1 and three._load().backend.concurrent_calls == 3
    sequential = one.score(pairs, raw=True)
    concurrent = three.score(pairs, raw=True)
    assert concurrent.tolist() == sequential.tolist()
    # The call shapes are reported in the same order however the calls were scheduled.
    assert three.rerank(QUERIES[0], DOCS).stats.batches == one.rerank(QUERIES[0], DOCS).stats.batches
    scorer = three._slot.current.scorer
    three.close()
    assert scorer._executor is None
    assert three.score(pairs[:2], raw=True).tolist() == sequential[:2].tolist()  # loads again after close


def test_explicit_threads_or_batched_rows_keep_one_call_at_a_time(tiny_int8_model_dir: Path, tiny_model_dir: Path) -> None:
    from crossrank.errors import ConfigurationError

    threads = Reranker(str(tiny_int8_model_dir), backend_options={"activation_quantization": "per-tensor", "num_threads": 2}).warm_up()
    assert threads._load().backend.concurrent_calls == 1
    batched = Reranker(str(tiny_model_dir), backend="onnx").warm_up()
    assert batched._load().backend.batch_invariant and batched._load().backend.concurrent_calls == 1
    with pytest.raises(ConfigurationError, match="concurrent_calls must be a positive int; received 0"):
        Reranker(str(tiny_model_dir), backend="onnx", backend_options={"concurrent_calls": 0}).warm_up()


def test_auto_activation_quantization_keeps_per_token_without_a_recorded_original(tiny_int8_model_dir: Path) -> None:
    reranker = Reranker(str(tiny_int8_model_dir)).warm_up()
    assert reranker.quantization == "per-token-int8"
    assert reranker._load().backend.batch_invariant


def test_a_calibration_fitted_under_other_settings_is_reported(tiny_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from crossrank.calibration import Calibration, PlattCalibrator

    fitted = {"max_length": 64, "long_documents": "truncate"}
    calibration = Calibration(calibrator=PlattCalibrator(1.0, 0.0), provenance={"scorer": fitted})
    with caplog.at_level(logging.INFO, logger="crossrank"):
        Reranker(str(tiny_model_dir), max_length=64, long_documents="truncate", calibration=calibration).warm_up()
    assert not [r for r in caplog.records if "fitted on scores from other settings" in r.message]
    with caplog.at_level(logging.INFO, logger="crossrank"):
        Reranker(str(tiny_model_dir), max_length=32, long_documents="select", calibration=calibration).warm_up()
    [record] = [r for r in caplog.records if "fitted on scores from other settings" in r.message]
    assert "'max_length': (64, 32)" in record.message and "'long_documents': ('truncate', 'select')" in record.message
