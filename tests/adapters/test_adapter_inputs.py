"""What the adapters accept and never change: NumPy numbers, nested metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossrank import Reranker
from crossrank.config import RerankerConfig

QUERY = "capital of france"
TEXTS = ["paris is the capital of france", "the cat and the dog", "berlin is a city in germany"]


@pytest.fixture(scope="module")
def shared(tiny_model_dir: Path) -> Reranker:
    return Reranker.from_config(RerankerConfig(model=str(tiny_model_dir)))


def test_langchain_results_are_deep_copies(shared: Reranker) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from crossrank.adapters.langchain import CrossRankCompressor

    documents = [Document(page_content=t, metadata={"source": {"tags": ["a"]}}) for t in TEXTS]
    ranked = CrossRankCompressor(reranker=shared).compress_documents(documents, QUERY)
    ranked[0].metadata["source"]["tags"].append("changed")
    assert all(d.metadata == {"source": {"tags": ["a"]}} for d in documents)


def test_haystack_and_llama_index_results_are_deep_copies(shared: Reranker) -> None:
    pytest.importorskip("haystack")
    pytest.importorskip("llama_index.core")
    from haystack import Document as HaystackDocument
    from llama_index.core.schema import NodeWithScore, TextNode

    from crossrank.adapters.haystack import CrossRankRanker
    from crossrank.adapters.llama_index import CrossRankRerank

    documents = [HaystackDocument(content=t, meta={"source": {"tags": ["a"]}}) for t in TEXTS]
    ranked = CrossRankRanker(reranker=shared).run(QUERY, documents)["documents"]
    ranked[0].meta["source"]["tags"].append("changed")
    assert all(d.meta == {"source": {"tags": ["a"]}} for d in documents)
    nodes = [NodeWithScore(node=TextNode(text=t, metadata={"source": {"tags": ["a"]}})) for t in TEXTS]
    reranked = CrossRankRerank(reranker=shared).postprocess_nodes(nodes, query_str=QUERY)
    reranked[0].node.metadata["source"]["tags"].append("changed")
    assert all(n.node.metadata == {"source": {"tags": ["a"]}} for n in nodes)


@pytest.mark.parametrize("top", [np.int64(2), np.int32(2)])
@pytest.mark.parametrize("threshold", [np.float32(0.0), np.float64(0.0)])
def test_numpy_numbers_are_accepted_as_top_n_and_threshold(shared: Reranker, top: object, threshold: object) -> None:
    pytest.importorskip("haystack")
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    from haystack import Document as HaystackDocument
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, TextNode

    from crossrank.adapters.haystack import CrossRankRanker
    from crossrank.adapters.langchain import CrossRankCompressor
    from crossrank.adapters.llama_index import CrossRankRerank

    configured = CrossRankRanker(reranker=shared, top_k=top, score_threshold=threshold)
    assert len(configured.run(QUERY, [HaystackDocument(content=t) for t in TEXTS])["documents"]) == 2
    per_call = CrossRankRanker(reranker=shared).run(QUERY, [HaystackDocument(content=t) for t in TEXTS], top_k=top, score_threshold=threshold)
    assert len(per_call["documents"]) == 2
    compressor = CrossRankCompressor(reranker=shared, top_n=top, threshold=threshold)
    assert len(compressor.compress_documents([Document(page_content=t) for t in TEXTS], QUERY)) == 2
    rerank = CrossRankRerank(reranker=shared, top_n=top, threshold=threshold)
    assert len(rerank.postprocess_nodes([NodeWithScore(node=TextNode(text=t)) for t in TEXTS], query_str=QUERY)) == 2
    assert len(shared.rerank(QUERY, TEXTS, top_k=top, threshold=threshold)) == 2
