"""CrossRankRerank inside a real LlamaIndex pipeline: VectorStoreIndex, retriever, query engine."""

from __future__ import annotations

import asyncio
import copy

import pytest

from crossrank import Reranker

pytest.importorskip("llama_index.core")

from crossrank.adapters.llama_index import CrossRankRerank
from llama_index.core import VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, TextNode
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
def index() -> VectorStoreIndex:
    # The mock embedding gives every text the same vector, so retrieval order carries no
    # relevance signal: whatever ends up first was put there by the reranker.
    nodes = [
        TextNode(text=text, metadata=dict(meta), id_=meta["doc_id"])
        for text, meta in zip(CORPUS, METADATA)
    ]
    return VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=8))


def test_is_a_node_postprocessor() -> None:
    assert issubclass(CrossRankRerank, BaseNodePostprocessor)


def test_query_engine_puts_the_answer_first(
    index: VectorStoreIndex, embedded_reranker: Reranker
) -> None:
    rerank = CrossRankRerank(reranker=embedded_reranker, top_n=2)
    engine = index.as_query_engine(
        llm=MockLLM(), similarity_top_k=len(CORPUS), node_postprocessors=[rerank]
    )
    response = engine.query(MOUNTAIN_QUESTION)
    sources = response.source_nodes
    assert sources[0].node.node_id == METADATA[MOUNTAIN_ANSWER]["doc_id"]
    assert len(sources) == 2
    assert sources[0].score > 0.5 > sources[1].score
    assert sources[0].node.metadata["crossrank_rank"] == 1
    # The scores travel with the node but stay out of the prompt the LLM sees.
    assert "crossrank_score" not in sources[0].node.get_content(metadata_mode=MetadataMode.LLM)
    assert "8,849 metres" in str(
        response
    )  # the mock LLM echoes its prompt, which holds the context


def test_async_query_engine(index: VectorStoreIndex, embedded_reranker: Reranker) -> None:
    rerank = CrossRankRerank(reranker=embedded_reranker, top_n=1)
    engine = index.as_query_engine(
        llm=MockLLM(), similarity_top_k=len(CORPUS), node_postprocessors=[rerank]
    )
    response = asyncio.run(engine.aquery(PLANT_QUESTION))
    assert [s.node.node_id for s in response.source_nodes] == [METADATA[PLANT_ANSWER]["doc_id"]]


def test_postprocess_retriever_output_without_mutating_it(
    index: VectorStoreIndex, embedded_reranker: Reranker
) -> None:
    retrieved = index.as_retriever(similarity_top_k=len(CORPUS)).retrieve(PLANT_QUESTION)
    snapshot = copy.deepcopy(retrieved)
    ranked = CrossRankRerank(reranker=embedded_reranker, top_n=3).postprocess_nodes(
        retrieved, query_str=PLANT_QUESTION
    )
    assert ranked[0].node.node_id == METADATA[PLANT_ANSWER]["doc_id"]
    assert [r.node.metadata["crossrank_rank"] for r in ranked] == [1, 2, 3]
    assert retrieved == snapshot
    assert all("crossrank_score" not in r.node.metadata for r in retrieved)


def test_off_topic_question_gets_no_context(
    index: VectorStoreIndex, embedded_reranker: Reranker
) -> None:
    recorder = AbstentionRecorder()
    rerank = CrossRankRerank(
        reranker=embedded_reranker, top_n=3, threshold=off_topic_threshold(), on_abstain=recorder
    )
    engine = index.as_query_engine(
        llm=MockLLM(), similarity_top_k=len(CORPUS), node_postprocessors=[rerank]
    )
    response = engine.query(OFF_TOPIC_QUESTION)
    assert response.source_nodes == []
    assert [query for query, _ in recorder.calls] == [OFF_TOPIC_QUESTION]


def test_missing_query_is_an_error(embedded_reranker: Reranker) -> None:
    from crossrank import InvalidInputError

    with pytest.raises(InvalidInputError, match="query"):
        CrossRankRerank(reranker=embedded_reranker).postprocess_nodes([])


def test_configuration_round_trips() -> None:
    rerank = CrossRankRerank(
        model="some/model",
        top_n=4,
        threshold="calibrated",
        long_documents="window",
        max_windows=3,
        reranker_options={"max_query_length": 40},
    )
    data = rerank.to_dict()
    assert data["class_name"] == "CrossRankRerank"
    restored = CrossRankRerank.from_dict(data)
    assert restored.to_dict() == data
    assert CrossRankRerank.from_json(rerank.to_json()).to_dict() == data
    assert restored.reranker.to_dict() == rerank.reranker.to_dict()
    assert restored.reranker.max_query_length == 40


def test_a_shared_reranker_is_serialized_by_its_options(embedded_model_dir) -> None:
    shared = Reranker(str(embedded_model_dir), max_length=256, window_overlap=16)
    data = CrossRankRerank(reranker=shared, top_n=2).to_dict()
    assert data["model"] == str(embedded_model_dir) and data["max_length"] == 256
    assert data["reranker_options"] == {"window_overlap": 16}
    assert CrossRankRerank.from_dict(data).reranker.to_dict() == shared.to_dict()
