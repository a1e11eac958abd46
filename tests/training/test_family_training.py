"""The trainer on every family: a training step, per-architecture freezing and LoRA, and a published,
calibrated model that loads with its family and ``threshold="calibrated"`` and no other option."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("bm25s")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "families"))

from family_models import CLASSIFIERS, DECODERS, build_causal_lm, build_classifier, build_sentence_transformers  # noqa: E402

from crossrank import Reranker  # noqa: E402
from crossrank.config import RerankerConfig  # noqa: E402
from crossrank.errors import ConfigurationError  # noqa: E402

TOPICS = ["paris", "france", "berlin", "germany", "river", "museum", "cat", "dog", "sun", "moon", "water", "city"]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Judged pairs: per topic a query, a document about it and two about others."""
    rows = []
    for i, topic in enumerate(TOPICS):
        others = [t for t in TOPICS if t != topic]
        rows.append({
            "query": f"what is the {topic}",
            "positive": f"the {topic} {topic} is the {topic}",
            "negatives": [f"the {others[i % len(others)]} is a {others[(i + 3) % len(others)]}", f"a {others[(i + 5) % len(others)]}"],
        })
    path = tmp_path_factory.mktemp("family-data") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("family-bases")
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            if kind in CLASSIFIERS:
                built[kind] = build_classifier(kind, root / kind)
            elif kind == "st":
                built[kind] = build_sentence_transformers(get("bert"), root / "st", max_length=64, prompt="query: ")
            else:
                built[kind] = build_causal_lm(kind, root / kind)
        return built[kind]

    return get


def _config(model: Path, out: Path, data: Path, kind: str, **options: Any) -> Any:
    from crossrank.training.config import TrainConfig

    decoder = kind in DECODERS
    base = {
        "base_model": str(model), "output_dir": str(out), "data": {"format": "pairs", "path": str(data)},
        "dev_fraction": 0.25, "negatives": {"strategy": "random", "num_negatives": 2, "pool_size": 6}, "loss": "bce",
        "epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "max_length": 384 if decoder else 48, "dev_candidates": 6,
        "checkpoint_every_steps": None, "patience": None, "export_onnx": False, "quantize": False, "num_threads": 1,
        **({"family": DECODERS[kind], "lora": {"rank": 4, "alpha": 8}} if decoder else {}),
    }
    base.update(options)
    return TrainConfig.from_dict(base)


FAST = ("xlm-roberta", "qwen3")
SLOW = tuple(k for k in (*CLASSIFIERS, "st", *sorted(DECODERS)) if k not in FAST)


def _training_step(base_model: Any, pairs_file: Path, tmp_path: Path, kind: str) -> None:
    from safetensors.numpy import load_file

    from crossrank.training.trainer import train

    losses: list[float] = []
    config = _config(base_model(kind), tmp_path / "run", pairs_file, kind, max_steps=2, freeze_layers=1)
    result = train(config, callbacks=[lambda step: losses.append(step.loss)])
    assert len(losses) == 2 and all(np.isfinite(losses))
    before = load_file(str(base_model(kind) / "model.safetensors"))
    last = sorted((result.run_dir / "checkpoints").iterdir())[-1]
    state = load_file(str(last / "model.safetensors"))
    if kind in DECODERS:
        # Adapters on the upper layer's attention, trained away from their zero start; the base untouched.
        adapters = {k: v for k, v in state.items() if "lora_" in k}
        assert adapters and all(".layers.1." in k and (".q_proj." in k or ".v_proj." in k) for k in adapters)
        assert any("lora_B" in k and np.abs(v).max() > 0 for k, v in adapters.items())
    else:
        changed = [k for k in before if k in state and not np.array_equal(before[k], state[k])]
        assert changed
        frozen = [k for k in changed if ".embeddings." in k or ".layer.0." in k or ".layers.0." in k or "embed_tokens" in k]
        assert not frozen, frozen


@pytest.mark.parametrize("kind", FAST)
def test_a_training_step_on_each_family(base_model: Any, pairs_file: Path, tmp_path: Path, kind: str) -> None:
    _training_step(base_model, pairs_file, tmp_path, kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", SLOW)
def test_a_training_step_on_every_other_family(base_model: Any, pairs_file: Path, tmp_path: Path, kind: str) -> None:
    _training_step(base_model, pairs_file, tmp_path, kind)


def test_default_lora_targets_and_layers_follow_the_architecture(base_model: Any) -> None:
    from crossrank.families import ModelFiles, resolve_family
    from crossrank.plugins import family_registry
    from crossrank.training.trainer import default_lora_targets, layer_stack

    expected = {
        "bert": ["query", "value"], "xlm-roberta": ["query", "value"], "deberta-v2": ["query_proj", "value_proj"],
        "distilbert": ["q_lin", "v_lin"], "modernbert": ["Wqkv"], "qwen3": ["q_proj", "v_proj"], "gemma": ["q_proj", "v_proj"],
    }
    for kind, targets in expected.items():
        folder = base_model(kind)
        family = resolve_family(family_registry(), ModelFiles.read(folder), requested=DECODERS.get(kind))
        module = family.torch_module(ModelFiles.read(folder), training=True)
        assert default_lora_targets(module.hf_model) == targets, kind
        layers, embeddings = layer_stack(module.hf_model)
        assert len(layers) == 2 and embeddings is not None, kind


def test_decoder_families_train_adapters(base_model: Any, pairs_file: Path, tmp_path: Path) -> None:
    from crossrank.training.trainer import train

    config = _config(base_model("qwen3"), tmp_path / "run", pairs_file, "qwen3", lora=None)
    with pytest.raises(ConfigurationError, match="family 'qwen3-reranker' scores with a language model's token logits and trains low-rank adapters"):
        train(config)


def _published(base_model: Any, pairs_file: Path, tmp_path: Path, kind: str) -> None:
    from crossrank.models.config import ModelConfig
    from crossrank.training.trainer import train

    instruction = "Given a question, find the passage about its topic" if kind in ("qwen3", "qwen2") else None
    config = _config(
        base_model(kind), tmp_path / "run", pairs_file, kind, epochs=2, export_onnx=True, quantize=True,
        gate_tolerance=1.0, name=f"tiny-{kind}", instruction=instruction,
    )
    result = train(config)
    recorded = ModelConfig.load(result.model_dir)
    family = DECODERS.get(kind) or ("sentence-transformers" if kind == "st" else "classifier")
    assert (recorded.family, recorded.instruction) == (family, instruction)
    assert result.metrics["threshold"] is not None and 0.0 <= result.metrics["threshold"] <= 1.0
    # Reranker(model=folder): no family=, no instruction=, and the fitted threshold works as it is.
    reranker = Reranker.from_config(RerankerConfig(model=str(result.model_dir), threshold="calibrated", allow_download=False))
    assert reranker.backend_name == "onnx" and reranker.loaded.family.name == family
    assert reranker.loaded.instruction == instruction
    assert reranker.calibration.threshold == pytest.approx(result.metrics["threshold"])
    documents = ["the paris paris is the paris", "a moon", "the dog is a sun"]
    ranked = reranker.rerank("what is the paris", documents)
    assert all(d.score >= reranker.calibration.threshold for d in ranked)
    assert "model family" in (result.model_dir / "README.md").read_text()


@pytest.mark.parametrize("kind", ["qwen3"])
def test_a_published_model_needs_no_family_and_its_threshold_works(base_model: Any, pairs_file: Path, tmp_path: Path, kind: str) -> None:
    _published(base_model, pairs_file, tmp_path, kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["xlm-roberta", "st", "modernbert", "qwen2", "gemma"])
def test_published_models_of_other_families(base_model: Any, pairs_file: Path, tmp_path: Path, kind: str) -> None:
    _published(base_model, pairs_file, tmp_path, kind)
