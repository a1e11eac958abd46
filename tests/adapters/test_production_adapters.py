"""The fallback and the score cache work through the LlamaIndex, LangChain and Haystack adapters.

Each adapter is given a real :class:`crossrank.Reranker` configured with ``fallback=`` or
``cache=``; the reranker's ``on_stats`` hook shows which path served each adapter call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crossrank import Reranker, RerankStats
from crossrank.score_cache import MemoryScoreCache

QUERY = "what is the capital of france"
TEXTS = ["the cat and the dog", "paris is the capital of france", "berlin is a city in germany"]
IDS = ["cat", "paris", "berlin"]


def _keyword_judge(query: str, texts: list[str]) -> list[float]:
    words = set(query.split())
    return [len(words & set(text.split())) / len(words) for text in texts]


def _llama_index(reranker: Reranker) -> Callable[[], list[tuple[str, float]]]:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from crossrank.adapters.llama_index import CrossRankRerank

    adapter = CrossRankRerank(reranker=reranker)
    nodes = [NodeWithScore(node=TextNode(text=t, id_=i), score=0.0) for t, i in zip(TEXTS, IDS)]

    def call() -> list[tuple[str, float]]:
        ranked = adapter.postprocess_nodes(nodes, QueryBundle(QUERY))
        return [(n.node.node_id, float(n.score)) for n in ranked]

    return call


def _langchain(reranker: Reranker) -> Callable[[], list[tuple[str, float]]]:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from crossrank.adapters.langchain import CrossRankCompressor

    adapter = CrossRankCompressor(reranker=reranker)
    documents = [Document(page_content=t, metadata={"id": i}) for t, i in zip(TEXTS, IDS)]

    def call() -> list[tuple[str, float]]:
        ranked = adapter.compress_documents(documents, QUERY)
        return [(d.metadata["id"], d.metadata["crossrank_score"]) for d in ranked]

    return call


def _haystack(reranker: Reranker) -> Callable[[], list[tuple[str, float]]]:
    pytest.importorskip("haystack")
    from haystack import Document

    from crossrank.adapters.haystack import CrossRankRanker

    adapter = CrossRankRanker(reranker=reranker)
    documents = [Document(content=t, id=i) for t, i in zip(TEXTS, IDS)]

    def call() -> list[tuple[str, float]]:
        ranked = adapter.run(query=QUERY, documents=documents)["documents"]
        return [(d.id, float(d.score)) for d in ranked]

    return call


ADAPTERS = {"llama_index": _llama_index, "langchain": _langchain, "haystack": _haystack}


def _expected(reranker: Reranker) -> list[tuple[str, float]]:
    return [(IDS[d.index], d.score) for d in reranker.rerank(QUERY, TEXTS)]


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_reranker_fallback_serves_through_the_adapter(adapter: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    seen: list[RerankStats] = []
    fallback = Reranker(str(tiny_model_dir))
    primary = Reranker(str(tmp_path / "missing-model"), allow_download=False, fallback=fallback, on_stats=seen.append)
    ranked = ADAPTERS[adapter](primary)()
    assert [s.served_by for s in seen] == ["fallback"]
    assert seen[0].fallback_reason.startswith("error: ModelNotFoundError")
    expected = _expected(fallback)
    assert [i for i, _ in ranked] == [i for i, _ in expected]
    assert [s for _, s in ranked] == pytest.approx([s for _, s in expected])


@pytest.mark.parametrize("adapter", ["llama_index", "langchain", "haystack"])
def test_callable_fallback_serves_through_the_adapter(adapter: str, tmp_path: Path) -> None:
    seen: list[RerankStats] = []
    primary = Reranker(
        str(tmp_path / "missing-model"), allow_download=False, fallback=_keyword_judge, on_stats=seen.append
    )
    ranked = ADAPTERS[adapter](primary)()
    assert [s.served_by for s in seen] == ["fallback"]
    assert ranked[0][0] == "paris"
    assert ranked[0][1] == pytest.approx(5 / 6)  # "is the capital of france": 5 of the query's 6 words


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_score_cache_serves_repeated_adapter_calls(adapter: str, tiny_model_dir: Path) -> None:
    seen: list[RerankStats] = []
    cache = MemoryScoreCache()
    reranker = Reranker(str(tiny_model_dir), cache=cache, on_stats=seen.append)
    call = ADAPTERS[adapter](reranker)
    first = call()
    second = call()
    assert [s.cache_hits for s in seen] == [0, len(TEXTS)]
    assert seen[1].pairs_scored == 0 and seen[1].batches == []
    assert len(cache) == len(TEXTS)
    assert second == first
    assert [i for i, _ in first] == [i for i, _ in _expected(Reranker(str(tiny_model_dir)))]


def test_async_adapter_call_gets_the_fallback(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("haystack")
    from haystack import Document

    from crossrank.adapters.haystack import CrossRankRanker

    seen: list[RerankStats] = []
    primary = Reranker(
        str(tmp_path / "missing-model"), allow_download=False, fallback=Reranker(str(tiny_model_dir)), on_stats=seen.append
    )
    ranker = CrossRankRanker(reranker=primary)
    documents = [Document(content=t, id=i) for t, i in zip(TEXTS, IDS)]
    output: dict[str, Any] = asyncio.run(ranker.run_async(query=QUERY, documents=documents))
    assert len(output["documents"]) == len(TEXTS)
    assert [s.served_by for s in seen] == ["fallback"]
