"""Engine behaviour on a tiny real model: results, thresholds, copies, configuration."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import numpy as np
import pytest

from crossrank import (
    Calibration,
    ConfigurationError,
    Document,
    InvalidInputError,
    InvalidInputTypeError,
    PlattCalibrator,
    Reranker,
    RerankResult,
)

DOCS = ["paris is the capital of france", "the cat and the dog", "berlin is a city in germany", "water"]


@pytest.fixture(scope="module")
def reranker(tiny_model_dir: Path) -> Reranker:
    return Reranker(str(tiny_model_dir)).warm_up()


def test_result_is_a_ranked_permutation_with_ranks_and_scores(reranker: Reranker) -> None:
    result = reranker.rerank("capital of france", DOCS)
    assert isinstance(result, RerankResult)
    assert sorted(d.index for d in result) == list(range(len(DOCS)))
    assert [d.rank for d in result] == [1, 2, 3, 4]
    scores = [d.score for d in result]
    assert scores == sorted(scores, reverse=True)
    assert all(type(d.score) is float and type(d.raw_score) is float for d in result)
    assert all(d.text == DOCS[d.index] for d in result)
    assert result.stats.documents == 4 and result.stats.pairs_scored == 4 and result.stats.model_ms > 0


def test_scores_are_sigmoid_of_logits_without_calibration(reranker: Reranker) -> None:
    for doc in reranker.rerank("capital", DOCS):
        assert doc.score == pytest.approx(1 / (1 + np.exp(-doc.raw_score)))


def test_inputs_are_not_mutated_and_metadata_is_copied(reranker: Reranker) -> None:
    documents = [Document("paris is the capital", {"id": 1, "tags": ["a"]}), {"text": "the cat", "metadata": {"id": 2}}, {"text": "water", "source": "x"}]
    before = copy.deepcopy(documents)
    result = reranker.rerank("capital", documents)
    assert documents == before
    by_index = {d.index: d for d in result}
    assert by_index[0].metadata == {"id": 1, "tags": ["a"]}
    assert by_index[2].metadata == {"source": "x"}
    assert by_index[0].metadata is not documents[0].metadata


def test_framework_like_objects_are_read_by_attribute(reranker: Reranker) -> None:
    class LangChainLike:
        def __init__(self, page_content: str) -> None:
            self.page_content = page_content
            self.metadata = {"k": "v"}

    result = reranker.rerank("capital", [LangChainLike("paris is the capital")])
    assert result[0].text == "paris is the capital" and result[0].metadata == {"k": "v"}


def test_threshold_then_top_k(reranker: Reranker) -> None:
    probabilities = reranker.score([("capital of france", d) for d in DOCS])
    cut = float(np.sort(probabilities)[1])  # keeps three documents
    result = reranker.rerank("capital of france", DOCS, threshold=cut, top_k=2)
    assert len(result) == 2 and result.stats.dropped_by_threshold == 1 and not result.abstained
    everything_dropped = reranker.rerank("capital of france", DOCS, threshold=1.0)
    if max(probabilities) < 1.0:
        assert len(everything_dropped) == 0 and everything_dropped.abstained


def test_per_call_false_and_zero_override_the_default(tiny_model_dir: Path) -> None:
    strict = Reranker(str(tiny_model_dir), threshold=1.0, top_k=1)
    assert strict.rerank("capital", DOCS).abstained
    assert len(strict.rerank("capital", DOCS, threshold=False)) == 1
    assert len(strict.rerank("capital", DOCS, threshold=0.0, top_k=False)) == len(DOCS)
    assert len(strict.rerank("capital", DOCS, threshold=0, top_k=False)) == len(DOCS)
    # A per-call None (or leaving the argument out) keeps the configured value.
    assert len(strict.rerank("capital", DOCS, threshold=0.0, top_k=None)) == 1
    assert strict.rerank("capital", DOCS, threshold=None).abstained


def test_calibrated_threshold_needs_a_fitted_one(reranker: Reranker, tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="fitted threshold"):
        reranker.rerank("capital", DOCS, threshold="calibrated")
    fitted = Reranker(str(tiny_model_dir), calibration=Calibration(PlattCalibrator(1.0, 0.0), threshold=0.0))
    assert len(fitted.rerank("capital", DOCS, threshold="calibrated")) == len(DOCS)
    abstaining = Reranker(
        str(tiny_model_dir),
        calibration=Calibration(PlattCalibrator(1.0, 0.0), threshold=0.0, abstention={"kind": "max-score", "min_top_score": 1.0}),
    )
    assert abstaining.rerank("capital", DOCS, threshold="calibrated").abstained


def test_calibration_file_beside_the_model_is_used(tiny_model_copy: Path) -> None:
    from crossrank import save_calibration

    save_calibration(Calibration(PlattCalibrator(a=0.0, b=0.0)), tiny_model_copy / "calibration.json")
    assert np.allclose(Reranker(str(tiny_model_copy)).score([("a", "b"), ("capital", "paris")]), 0.5)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"batch_size": 0}, ConfigurationError),
        ({"token_budget": True}, ConfigurationError),
        ({"long_documents": "drop"}, ConfigurationError),
        ({"window_pooling": "sum"}, ConfigurationError),
        ({"threshold": 1.5}, InvalidInputError),
        ({"threshold": float("nan")}, InvalidInputError),
        ({"top_k": 0}, InvalidInputError),
        ({"device": "tpu"}, ConfigurationError),
        ({"model": ""}, ConfigurationError),
    ],
)
def test_constructor_validates(tiny_model_dir: Path, kwargs: dict, error: type[Exception]) -> None:
    options = {"model": str(tiny_model_dir), **kwargs}
    with pytest.raises(error):
        Reranker(**options)


def test_token_budget_smaller_than_a_row_is_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="token_budget"):
        Reranker(str(tiny_model_dir), token_budget=64).warm_up()


def test_to_dict_round_trip(tiny_model_dir: Path) -> None:
    original = Reranker(str(tiny_model_dir), max_length=64, threshold=0.3, top_k=2, long_documents="window", calibration=Calibration(PlattCalibrator(2.0, -1.0), threshold=0.4))
    restored = Reranker.from_dict(original.to_dict())
    assert restored.to_dict() == original.to_dict()
    assert restored.rerank("capital", DOCS)[0].score == pytest.approx(original.rerank("capital", DOCS)[0].score)


def test_empty_documents_give_empty_result(reranker: Reranker) -> None:
    result = reranker.rerank("capital", [])
    assert len(result) == 0 and not result.abstained and result.stats.pairs_scored == 0


@pytest.mark.parametrize("query", ["", "   ", None, 3])
def test_bad_queries_are_typed_errors(reranker: Reranker, query: object) -> None:
    with pytest.raises((InvalidInputError, InvalidInputTypeError)):
        reranker.rerank(query, DOCS)  # type: ignore[arg-type]


def test_async_rerank_matches_sync(reranker: Reranker) -> None:
    sync = reranker.rerank("capital", DOCS)
    result = asyncio.run(reranker.arerank("capital", DOCS))
    assert [d.index for d in result] == [d.index for d in sync]
