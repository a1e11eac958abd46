"""On torch, every family's raw scores equal its own documented computation, alone and in mixed batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from family_models import CLASSIFIERS, DECODERS, PAIRS
from family_references import (
    classifier_reference,
    cross_encoder_reference,
    flag_llm_reference,
    mxbai_reference,
    qwen3_reference,
)

from crossrank import Reranker
from crossrank.config import RerankerConfig

TOLERANCE = 1e-4


def _scores(folder: Path, pairs: list[tuple[str, str]], **options: object) -> tuple[np.ndarray, np.ndarray, Reranker]:
    """Raw scores of ``pairs`` in one batched call and one pair per call."""
    reranker = Reranker.from_config(
        RerankerConfig(model=str(folder), backend="torch", long_documents="truncate", allow_download=False, **options)  # type: ignore[arg-type]
    )
    batched = reranker.score(pairs, raw=True)
    alone = np.array([reranker.score([pair], raw=True)[0] for pair in pairs])
    return batched, alone, reranker


@pytest.mark.parametrize("kind", CLASSIFIERS)
def test_classifiers_match_transformers_one_pair_at_a_time(family_model: Callable[[str], Path], kind: str) -> None:
    folder = family_model(kind)
    batched, alone, reranker = _scores(folder, PAIRS)
    reference = classifier_reference(folder, PAIRS)
    assert reranker.loaded.family.name == "classifier"
    np.testing.assert_allclose(batched, reference, atol=TOLERANCE)
    np.testing.assert_allclose(alone, reference, atol=TOLERANCE)
    assert np.ptp(reference) > 1e-3  # the pairs really score differently


def test_token_types_only_where_the_model_has_them(family_model: Callable[[str], Path]) -> None:
    takes = {kind: "token_type_ids" in Reranker(str(family_model(kind)), backend="torch").loaded.backend.module.input_names
             for kind in ("bert", "distilbert", "modernbert", "xlm-roberta", "deberta-v2")}
    assert takes == {"bert": True, "distilbert": False, "modernbert": False, "xlm-roberta": False, "deberta-v2": False}


def test_decoder_classifier_batches_need_no_pad_token_id(family_model: Callable[[str], Path]) -> None:
    # Qwen3ForSequenceClassification without pad_token_id: transformers cannot batch it at all; crossrank
    # reads each row at its last real token, so a batch scores as the rows would alone.
    folder = family_model("qwen3-seq-cls")
    from family_models import hub_config

    assert hub_config(folder).get("pad_token_id") is None
    batched, alone, _ = _scores(folder, PAIRS, batch_size=32)
    np.testing.assert_allclose(batched, alone, atol=TOLERANCE)


def test_qwen3_reranker_matches_the_model_card(family_model: Callable[[str], Path]) -> None:
    folder = family_model("qwen3")
    batched, alone, reranker = _scores(folder, PAIRS, family="qwen3-reranker")
    raw, p_yes = qwen3_reference(folder, PAIRS)
    np.testing.assert_allclose(batched, raw, atol=TOLERANCE)
    np.testing.assert_allclose(alone, raw, atol=TOLERANCE)
    # With no fitted calibration the probability is the card's P(yes) from the softmax over no/yes.
    np.testing.assert_allclose(reranker.score(PAIRS), p_yes, atol=TOLERANCE)
    assert reranker.loaded.instruction == "Given a web search query, retrieve relevant passages that answer the query"


def test_qwen3_reranker_instruction_changes_the_prompt_as_the_card_does(family_model: Callable[[str], Path]) -> None:
    folder = family_model("qwen3")
    instruction = "Given a question, retrieve passages that answer it"
    batched, _, reranker = _scores(folder, PAIRS, family="qwen3-reranker", instruction=instruction)
    raw, _ = qwen3_reference(folder, PAIRS, instruction=instruction)
    np.testing.assert_allclose(batched, raw, atol=TOLERANCE)
    default, _, _ = _scores(folder, PAIRS[:2], family="qwen3-reranker")
    assert not np.allclose(default, batched[:2])
    assert reranker.scorer_id() != Reranker(str(folder), backend="torch", family="qwen3-reranker").scorer_id()


def test_bge_llm_reranker_matches_flagembedding(family_model: Callable[[str], Path]) -> None:
    folder = family_model("gemma")
    batched, alone, _ = _scores(folder, PAIRS, family="bge-llm-reranker")
    reference = flag_llm_reference(folder, PAIRS)
    np.testing.assert_allclose(batched, reference, atol=TOLERANCE)
    np.testing.assert_allclose(alone, reference, atol=TOLERANCE)


@pytest.mark.parametrize("instruction", [None, "find facts about cities"])
def test_mxbai_rerank_v2_matches_its_code(family_model: Callable[[str], Path], instruction: str | None) -> None:
    folder = family_model("qwen2")
    batched, alone, _ = _scores(folder, PAIRS, family="mxbai-rerank-v2", instruction=instruction)
    reference = mxbai_reference(folder, PAIRS, instruction=instruction)
    np.testing.assert_allclose(batched, reference, atol=TOLERANCE)
    np.testing.assert_allclose(alone, reference, atol=TOLERANCE)


def test_sentence_transformers_folder_scores_as_cross_encoder_predict(family_model: Callable[[str], Path]) -> None:
    folder = family_model("st")
    # Longer than its max_length (32): truncated as predict truncates. (A query so long that
    # predict's longest_first would cut it too is kept whole by crossrank, by design.)
    long_pairs = [*PAIRS[:4], ("capital", "capital"), ("cats", "cats and dogs are popular pets around the world " * 30)]
    batched, alone, reranker = _scores(folder, long_pairs)
    assert reranker.loaded.family.name == "sentence-transformers"
    assert reranker.loaded.encoder.max_length == 32  # its stored max_length, not the model's 512 positions
    raw = cross_encoder_reference(folder, long_pairs)
    np.testing.assert_allclose(batched, raw, atol=TOLERANCE)
    np.testing.assert_allclose(alone, raw, atol=TOLERANCE)
    # Its default Sigmoid activation is crossrank's uncalibrated probability.
    np.testing.assert_allclose(reranker.score(long_pairs), cross_encoder_reference(folder, long_pairs, activation=True), atol=TOLERANCE)


def test_sentence_transformers_prompt_is_what_predict_puts_before_the_query(family_model: Callable[[str], Path]) -> None:
    folder = family_model("st")
    with_prompt, _, _ = _scores(folder, PAIRS[:3])
    plain, _, _ = _scores(family_model("bert"), [("query: " + q, d) for q, d in PAIRS[:3]], max_length=32)
    np.testing.assert_allclose(with_prompt, plain, atol=TOLERANCE)


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_decoder_scores_do_not_depend_on_the_batch(family_model: Callable[[str], Path], kind: str) -> None:
    folder = family_model(kind)
    reranker = Reranker.from_config(RerankerConfig(model=str(folder), backend="torch", family=DECODERS[kind], allow_download=False))
    many = [(q, d) for q, d in PAIRS for _ in range(3)]
    together = reranker.score(many, raw=True)
    separately = np.concatenate([reranker.score(many[i : i + 2], raw=True) for i in range(0, len(many), 2)])
    np.testing.assert_allclose(together, separately, atol=TOLERANCE)
