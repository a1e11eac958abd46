"""CrossRankRanker inside a real Haystack pipeline: InMemoryBM25Retriever -> CrossRankRanker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crossrank import Reranker, RerankResult

pytest.importorskip("haystack")

from crossrank.adapters.haystack import CrossRankRanker
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.core.errors import DeserializationError
from haystack.document_stores.in_memory import InMemoryDocumentStore
from test_adapters_common import (
    CORPUS,
    METADATA,
    MOUNTAIN_ANSWER,
    MOUNTAIN_QUESTION,
    OFF_TOPIC_QUESTION,
    PLANT_ANSWER,
    PLANT_QUESTION,
    off_topic_threshold,
)

pytestmark = pytest.mark.embedded

ABSTAINED: list[str] = []


def record_abstention(query: str, result: RerankResult) -> None:
    """A module-level callback, so a saved pipeline can refer to it by import path."""
    ABSTAINED.append(query)


@pytest.fixture(scope="module")
def store() -> InMemoryDocumentStore:
    document_store = InMemoryDocumentStore()
    document_store.write_documents(
        [Document(content=t, meta=dict(m)) for t, m in zip(CORPUS, METADATA)]
    )
    return document_store


def _pipeline(store: InMemoryDocumentStore, ranker: CrossRankRanker) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component(
        "retriever", InMemoryBM25Retriever(document_store=store, top_k=len(CORPUS))
    )
    pipeline.add_component("ranker", ranker)
    pipeline.connect("retriever.documents", "ranker.documents")
    return pipeline


def _inputs(query: str, **ranker: Any) -> dict[str, dict[str, Any]]:
    return {"retriever": {"query": query}, "ranker": {"query": query, **ranker}}


def test_pipeline_puts_the_answer_first(
    store: InMemoryDocumentStore, embedded_reranker: Reranker
) -> None:
    result = _pipeline(store, CrossRankRanker(reranker=embedded_reranker, top_k=2)).run(
        _inputs(MOUNTAIN_QUESTION)
    )
    documents = result["ranker"]["documents"]
    assert documents[0].meta["doc_id"] == METADATA[MOUNTAIN_ANSWER]["doc_id"]
    assert len(documents) == 2
    assert documents[0].score > 0.5 > documents[1].score
    assert documents[0].meta["crossrank_rank"] == 1


def test_pipeline_saved_to_yaml_and_loaded_back(
    store: InMemoryDocumentStore, embedded_reranker: Reranker, embedded_model_dir
) -> None:
    ranker = CrossRankRanker(
        str(embedded_model_dir),
        top_k=2,
        score_threshold=off_topic_threshold(),
        on_abstain=record_abstention,
    )
    text = _pipeline(store, ranker).dumps()
    assert "crossrank.adapters.haystack.CrossRankRanker" in text
    with pytest.raises(DeserializationError):
        Pipeline.loads(text)  # Haystack 3 loads only allow-listed modules
    loaded = Pipeline.loads(text, allowed_modules=["crossrank.*", __name__])
    loaded_ranker = loaded.get_component("ranker")
    assert loaded_ranker.to_dict() == ranker.to_dict()
    assert loaded_ranker.on_abstain is record_abstention
    assert loaded.dumps() == text

    documents = loaded.run(_inputs(PLANT_QUESTION))["ranker"]["documents"]
    assert documents[0].meta["doc_id"] == METADATA[PLANT_ANSWER]["doc_id"]
    ABSTAINED.clear()
    assert loaded.run(_inputs(OFF_TOPIC_QUESTION))["ranker"]["documents"] == []
    assert ABSTAINED == [OFF_TOPIC_QUESTION]
    # A per-call False switches the saved threshold off.
    assert (
        len(loaded.run(_inputs(OFF_TOPIC_QUESTION, score_threshold=False))["ranker"]["documents"])
        == 2
    )


def test_async_pipeline(store: InMemoryDocumentStore, embedded_reranker: Reranker) -> None:
    pipeline = _pipeline(store, CrossRankRanker(reranker=embedded_reranker, top_k=1))
    result = asyncio.run(pipeline.run_async(_inputs(PLANT_QUESTION)))
    assert [d.meta["doc_id"] for d in result["ranker"]["documents"]] == [
        METADATA[PLANT_ANSWER]["doc_id"]
    ]


def test_component_round_trips_through_to_dict(embedded_reranker: Reranker) -> None:
    ranker = CrossRankRanker(
        "some/model", top_k=3, score_threshold="calibrated", max_length=128, backend="onnx"
    )
    data = ranker.to_dict()
    assert data["type"] == "crossrank.adapters.haystack.CrossRankRanker"
    restored = CrossRankRanker.from_dict(data)
    assert restored.to_dict() == data
    assert restored.reranker.to_dict() == ranker.reranker.to_dict()
    shared = CrossRankRanker(reranker=embedded_reranker, top_k=1).to_dict()
    assert shared["init_parameters"]["model"] == embedded_reranker.model


def test_documents_without_text_are_refused(embedded_reranker: Reranker) -> None:
    from crossrank import InvalidInputTypeError

    with pytest.raises(InvalidInputTypeError, match="document 1"):
        CrossRankRanker(reranker=embedded_reranker).run(
            MOUNTAIN_QUESTION, [Document(content="a"), Document()]
        )
