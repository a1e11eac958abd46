"""Lengths: the real position limit, the model's own default, and a token budget that follows it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from crossrank import ConfigurationError, Reranker
from crossrank.families import ModelFiles

LONG = "the river flows through the city to the sea " * 200


def test_xlm_roberta_never_overflows_its_offset_position_table(family_model: Callable[[str], Path]) -> None:
    # max_position_embeddings 514 includes the 2-position padding offset: 512 tokens fit.
    folder = family_model("xlm-roberta")
    assert ModelFiles.read(folder).position_limit == 512
    reranker = Reranker(str(folder), backend="torch", long_documents="truncate")
    assert reranker.loaded.encoder.max_length == 512
    scores = reranker.score([("river", LONG), ("city", "the city")], raw=True)
    assert np.isfinite(scores).all()
    windowed = Reranker(str(folder), backend="torch", long_documents="window", max_windows=2).score([("river", LONG)], raw=True)
    assert np.isfinite(windowed).all()
    with pytest.raises(ConfigurationError, match="max_length=514 exceeds the model's limit of 512 tokens"):
        Reranker(str(folder), backend="torch", max_length=514).score([("q", "d")])


@pytest.mark.parametrize("kind", ["modernbert", "qwen3-seq-cls"])
def test_long_context_models_work_with_the_defaults(family_model: Callable[[str], Path], kind: str) -> None:
    # 8192 (ModernBERT's tokenizer) or 4096 positions: the default length is capped at 512, so the
    # default token budget (1024) holds a full row.
    reranker = Reranker(str(family_model(kind)), backend="torch")
    assert reranker.loaded.encoder.max_length == 512
    assert np.isfinite(reranker.score([("river", LONG), ("a", "b")], raw=True)).all()


def test_the_default_token_budget_follows_a_longer_max_length(family_model: Callable[[str], Path]) -> None:
    folder = family_model("modernbert")
    reranker = Reranker(str(folder), backend="torch", max_length=2048, long_documents="truncate")
    assert reranker.loaded.token_budget == 2048
    assert np.isfinite(reranker.score([("river", LONG)], raw=True)).all()
    # A budget the caller chose stays a hard rule.
    with pytest.raises(ConfigurationError, match="token_budget=1000 must be at least max_length=2048"):
        Reranker(str(folder), backend="torch", max_length=2048, token_budget=1000).score([("q", "d")])


def test_the_sentence_transformers_length_comes_before_config_json(family_model: Callable[[str], Path]) -> None:
    files = ModelFiles.read(family_model("st"))
    assert files.position_limit == 512 and files.stated_max_length == (32, "tokenizer_config.json model_max_length")
    assert Reranker(str(family_model("st")), backend="torch").loaded.encoder.max_length == 32


def test_model_card_languages_are_read_from_the_front_matter(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("---\nlicense: mit\nlanguage:\n- en\n- zh\npipeline_tag: text-ranking\n---\n# card\n")
    assert ModelFiles.read(tmp_path).languages == ("en", "zh")
    (tmp_path / "README.md").write_text("---\nlanguage: [de, fr]\n---\n")
    assert ModelFiles.read(tmp_path).languages == ("de", "fr")
    (tmp_path / "README.md").write_text("# no front matter\nlanguage: en\n")
    assert ModelFiles.read(tmp_path).languages == ()


def test_a_tokenizer_file_that_pads_every_text_is_laid_out_unpadded(family_model: Callable[[str], Path], tmp_path: Path) -> None:
    # Some published tokenizer.json files pad and truncate every text (e.g. to 128 tokens).
    import shutil

    from tokenizers import Tokenizer

    folder = tmp_path / "padding"
    shutil.copytree(family_model("bert"), folder)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_padding(length=128)
    tokenizer.enable_truncation(max_length=128)
    tokenizer.save(str(folder / "tokenizer.json"))
    pairs = [("what is the capital", "paris is the capital of france"), ("river", LONG)]
    expected = Reranker(str(family_model("bert")), backend="torch", long_documents="truncate").score(pairs, raw=True)
    reranker = Reranker(str(folder), backend="torch", long_documents="truncate")
    np.testing.assert_allclose(reranker.score(pairs, raw=True), expected, atol=1e-6)
