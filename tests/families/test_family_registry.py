"""Families are plugins; every model gets one family, chosen explicitly, by its id or by its files."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from crossrank import ConfigurationError, ModelIntegrityError, PluginError, Reranker, hookimpl
from crossrank.config import RerankerConfig
from crossrank.families import ModelFiles, PromptTemplate, TokenLogitFamily, known_models, resolve_family
from crossrank.plugins import family_registry, new_plugin_manager

JUDGE = TokenLogitFamily(
    name="toy-judge",
    template=PromptTemplate(query="Q: {query}", separator="\n", document="D: {document}", suffix=("\nRelevant:",)),
    score_tokens=(("yes", 2.0), ("no", -0.5)),
    token_lookup="vocabulary",
    description="a plugin's prompt and score tokens",
)


class JudgePlugin:
    """A separate plugin object: registers one family, nothing else."""

    @hookimpl
    def crossrank_families(self) -> list[object]:
        return [JUDGE]


def _judge_reference(folder: Path, pairs: list[tuple[str, str]]) -> np.ndarray:
    """The plugin family's score computed by hand with transformers: its prompt, its tokens, its weights."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()

    def ids(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False).ids

    yes, no = tokenizer.token_to_id("yes"), tokenizer.token_to_id("no")
    out = []
    with torch.no_grad():
        for query, document in pairs:
            row = ids(f"Q: {query}") + ids("\n") + ids(f"D: {document}") + ids("\nRelevant:")
            logits = model(input_ids=torch.tensor([row])).logits[0, -1]
            out.append(float(2.0 * logits[yes] - 0.5 * logits[no]))
    return np.array(out)


def test_a_family_from_a_separate_plugin_object_scores_the_model(family_model: Callable[[str], Path]) -> None:
    folder = family_model("qwen3")
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(JudgePlugin(), name="judge-plugin")
    assert "toy-judge" in family_registry(manager) and "toy-judge" not in family_registry(new_plugin_manager(load_entry_points=False))
    pairs = [("what is the capital of france", "paris is the capital of france"), ("cats?", "the sun is a star")]
    reranker = Reranker(str(folder), backend="torch", family="toy-judge", plugin_manager=manager)
    np.testing.assert_allclose(reranker.score(pairs, raw=True), _judge_reference(folder, pairs), atol=1e-4)
    assert reranker.loaded.identity()["family"] == "toy-judge"
    # The process-wide registry does not know it: the name is refused with the registered ones listed.
    with pytest.raises(ConfigurationError, match=r"unknown model family 'toy-judge'; registered families: \[.*'qwen3-reranker'"):
        Reranker(str(folder), backend="torch", family="toy-judge").score(pairs)


def test_a_plugin_family_replaces_a_builtin_of_the_same_name() -> None:
    replacement = TokenLogitFamily(name="qwen3-reranker", score_tokens=(("yes", 1.0),))

    class Override:
        @hookimpl
        def crossrank_families(self) -> list[object]:
            return [replacement]

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(Override(), name="override")
    assert family_registry(manager)["qwen3-reranker"] is replacement


def test_builtin_families_come_through_the_same_hook() -> None:
    registry = family_registry(new_plugin_manager(load_entry_points=False))
    assert list(registry) == ["classifier", "sentence-transformers", "qwen3-reranker", "bge-llm-reranker", "mxbai-rerank-v2"]
    table = known_models(registry)
    assert table["Qwen/Qwen3-Reranker-0.6B"] == table["Qwen/Qwen3-Reranker-8B"] == "qwen3-reranker"
    assert table["BAAI/bge-reranker-v2-gemma"] == "bge-llm-reranker"
    assert table["mixedbread-ai/mxbai-rerank-large-v2"] == "mxbai-rerank-v2"


def test_a_plugin_must_return_family_instances() -> None:
    class Broken:
        @hookimpl
        def crossrank_families(self) -> list[object]:
            return [TokenLogitFamily]

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(Broken(), name="broken")
    with pytest.raises(PluginError, match=r"must return ModelFamily instances; got the class TokenLogitFamily \(return an instance\)"):
        family_registry(manager)


def test_known_model_ids_need_no_family(family_model: Callable[[str], Path], tmp_path: Path) -> None:
    registry = family_registry(new_plugin_manager(load_entry_points=False))
    files = ModelFiles.read(family_model("qwen3"))
    assert resolve_family(registry, files, names=("Qwen/Qwen3-Reranker-0.6B",)).name == "qwen3-reranker"
    assert resolve_family(registry, files, names=("mixedbread-ai/mxbai-rerank-base-v2",)).name == "mxbai-rerank-v2"
    # A local copy named after the model is recognised too (a language model, so nothing else could score it).
    local = tmp_path / "Qwen3-Reranker-0.6B"
    shutil.copytree(family_model("qwen3"), local)
    reranker = Reranker(str(local), backend="torch")
    assert reranker.loaded.family.name == "qwen3-reranker"


def test_a_causal_lm_without_a_known_family_is_a_clear_error(family_model: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Reranker(str(family_model("qwen3")), backend="torch").score([("q", "d")])
    message = str(caught.value)
    assert "causal language model (Qwen3ForCausalLM)" in message
    assert "pass family= one of ['bge-llm-reranker', 'mxbai-rerank-v2', 'qwen3-reranker']" in message
    assert "Qwen/Qwen3-Reranker-0.6B" in message


def test_an_instruction_needs_an_instruction_aware_family(family_model: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigurationError, match="family 'classifier' takes no instruction; received instruction='be nice'"):
        Reranker(str(family_model("bert")), backend="torch", instruction="be nice").score([("q", "d")])
    with pytest.raises(ConfigurationError, match="family must be a model family name"):
        RerankerConfig(family=" padded ")


def test_a_load_that_would_leave_a_random_head_is_refused(family_model: Callable[[str], Path], tmp_path: Path) -> None:
    # A Qwen3ForCausalLM read as a sequence classifier would get a new, random score head.
    with pytest.raises(ModelIntegrityError, match=r"would leave weights newly initialized .*: score\.weight\. Refused"):
        Reranker(str(family_model("qwen3")), backend="torch", family="classifier").score([("q", "d")])
    # A classifier whose head is missing from its weights file.
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "headless"
    shutil.copytree(family_model("bert"), broken)
    state = load_file(str(broken / "model.safetensors"))
    del state["classifier.weight"], state["classifier.bias"]
    save_file(state, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelIntegrityError, match=r"classifier\.bias, classifier\.weight"):
        Reranker(str(broken), backend="torch").score([("q", "d")])


def test_the_recorded_family_and_instruction_need_no_options(family_model: Callable[[str], Path], tmp_path: Path) -> None:
    from crossrank.models.config import ModelConfig

    folder = tmp_path / "recorded"
    shutil.copytree(family_model("qwen2"), folder)
    ModelConfig(name="recorded", torch_weights="model.safetensors", max_length=4096, family="mxbai-rerank-v2", instruction="find facts").save(folder)
    reranker = Reranker(str(folder), backend="torch")
    assert (reranker.loaded.family.name, reranker.loaded.instruction) == ("mxbai-rerank-v2", "find facts")
    saved = ModelConfig.load(folder).to_dict()
    assert saved["family"] == "mxbai-rerank-v2" and "instruction" in saved
    assert "family" not in ModelConfig(name="plain").to_dict()  # unset: not written, older readers unaffected
