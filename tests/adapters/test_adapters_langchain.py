"""CrossRankCompressor inside a real LangChain ContextualCompressionRetriever."""

from __future__ import annotations

import asyncio

import pytest

from crossrank import Reranker

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_classic")

from crossrank.adapters.langchain import CrossRankCompressor
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.documents.compressor import BaseDocumentCompressor
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore
from test_adapters_common import (
    CORPUS,
    METADATA,
    MOUNTAIN_ANSWER,
    MOUNTAIN_QUESTION,
    OFF_TOPIC_QUESTION,
    PLANT_ANSWER,
    PLANT_QUESTION,
    AbstentionRecorder,
    off_topic_threshold,
)

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def store() -> InMemoryVectorStore:
    # Hash-based fake embeddings: retrieval order is unrelated to relevance, the reranker decides.
    vector_store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    vector_store.add_documents(
        [Document(page_content=text, metadata=dict(meta)) for text, meta in zip(CORPUS, METADATA)],
        ids=[meta["doc_id"] for meta in METADATA],
    )
    return vector_store


def _retriever(
    store: InMemoryVectorStore, compressor: CrossRankCompressor
) -> ContextualCompressionRetriever:
    return ContextualCompressionRetriever(
        base_compressor=compressor,
        base_retriever=store.as_retriever(search_kwargs={"k": len(CORPUS)}),
    )


def test_is_a_document_compressor() -> None:
    assert issubclass(CrossRankCompressor, BaseDocumentCompressor)


def test_compression_retriever_puts_the_answer_first(
    store: InMemoryVectorStore, embedded_reranker: Reranker
) -> None:
    documents = _retriever(store, CrossRankCompressor(reranker=embedded_reranker, top_n=2)).invoke(
        MOUNTAIN_QUESTION
    )
    assert documents[0].metadata["doc_id"] == METADATA[MOUNTAIN_ANSWER]["doc_id"]
    assert len(documents) == 2
    assert documents[0].metadata["crossrank_score"] > 0.5 > documents[1].metadata["crossrank_score"]
    assert documents[0].id == METADATA[MOUNTAIN_ANSWER]["doc_id"]  # the id survives the copy


def test_async_compression_retriever(
    store: InMemoryVectorStore, embedded_reranker: Reranker
) -> None:
    retriever = _retriever(store, CrossRankCompressor(reranker=embedded_reranker, top_n=1))
    documents = asyncio.run(retriever.ainvoke(PLANT_QUESTION))
    assert [d.metadata["doc_id"] for d in documents] == [METADATA[PLANT_ANSWER]["doc_id"]]


def test_off_topic_question_returns_nothing(
    store: InMemoryVectorStore, embedded_reranker: Reranker
) -> None:
    recorder = AbstentionRecorder()
    compressor = CrossRankCompressor(
        reranker=embedded_reranker, top_n=3, threshold=off_topic_threshold(), on_abstain=recorder
    )
    assert _retriever(store, compressor).invoke(OFF_TOPIC_QUESTION) == []
    assert [query for query, _ in recorder.calls] == [OFF_TOPIC_QUESTION]


def test_compress_documents_directly(embedded_reranker: Reranker) -> None:
    documents = [Document(page_content=text, metadata={"n": i}) for i, text in enumerate(CORPUS)]
    compressed = CrossRankCompressor(reranker=embedded_reranker, top_n=1).compress_documents(
        documents, PLANT_QUESTION
    )
    assert [d.metadata["n"] for d in compressed] == [PLANT_ANSWER]
    assert documents[PLANT_ANSWER].metadata == {"n": PLANT_ANSWER}


def test_configuration_round_trips() -> None:
    compressor = CrossRankCompressor(
        model="some/model",
        top_n=4,
        threshold=0.3,
        batch_size=8,
        reranker_options={"window_overlap": 8},
    )
    data = compressor.model_dump()
    restored = CrossRankCompressor.model_validate(data)
    assert restored.model_dump() == data
    assert (
        CrossRankCompressor.model_validate_json(compressor.model_dump_json()).model_dump() == data
    )
    assert CrossRankCompressor(**data).reranker.to_dict() == compressor.reranker.to_dict()
    assert restored.reranker.to_dict() == compressor.reranker.to_dict()
