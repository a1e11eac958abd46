"""``first_stage_weight="auto"`` (the default) across the engine, the three adapters and ``crossrank rerank``.

With a finite retriever score on every candidate the order is the fusion at
:data:`crossrank.fusion.AUTO_WEIGHT`; without them (or with one missing) the reranker orders
alone and nothing fails. Probabilities never change. All on the tiny real model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crossrank import Reranker
from crossrank.cli import main
from crossrank.fusion import AUTO_WEIGHT, fuse_scores

QUERY = "capital of france"
DOCS = ["paris is the capital of france", "the cat and the dog", "berlin is a city in germany", "water", "france and paris"]
RETRIEVED = [3.0, 14.0, 9.5, 0.5, 6.0]


@pytest.fixture(scope="module")
def reranker(tiny_model_dir: Path) -> Reranker:
    return Reranker(str(tiny_model_dir))


@pytest.fixture(scope="module")
def orders(reranker: Reranker) -> tuple[list[str], list[str], dict[str, float]]:
    """The reranker's own order, the order fused at the auto weight, and each text's probability."""
    alone = reranker.rerank(QUERY, DOCS)
    logits = np.zeros(len(DOCS))
    for document in alone:
        logits[document.index] = document.raw_score
    fused = np.argsort(-fuse_scores(logits, RETRIEVED, first_stage_weight=AUTO_WEIGHT), kind="stable")
    alone_order = [d.text for d in alone]
    fused_order = [DOCS[i] for i in fused]
    # The retriever's scores disagree with the model: without this, the tests could not fail.
    assert fused_order != alone_order
    return alone_order, fused_order, {d.text: d.score for d in alone}


def test_engine_default_fuses_only_with_scores(reranker: Reranker, orders) -> None:  # type: ignore[no-untyped-def]
    alone_order, fused_order, probabilities = orders
    assert reranker.first_stage_weight == "auto"
    with_scores = reranker.rerank(QUERY, DOCS, first_stage_scores=RETRIEVED)
    assert [d.text for d in with_scores] == fused_order
    assert with_scores.stats.first_stage_weight == AUTO_WEIGHT
    assert {d.text: d.score for d in with_scores} == probabilities
    without = reranker.rerank(QUERY, DOCS)
    assert [d.text for d in without] == alone_order and without.stats.first_stage_weight == 0.0


def test_llama_index_reads_node_scores(reranker: Reranker, orders) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("llama_index.core")
    from crossrank.adapters.llama_index import CrossRankRerank
    from llama_index.core.schema import NodeWithScore, TextNode

    alone_order, fused_order, probabilities = orders
    rerank = CrossRankRerank(reranker=reranker)

    def nodes(scores: list[float | None]) -> list[NodeWithScore]:
        return [NodeWithScore(node=TextNode(text=t), score=s) for t, s in zip(DOCS, scores)]

    fused = rerank.postprocess_nodes(nodes(list(RETRIEVED)), query_str=QUERY)
    assert [n.node.get_content() for n in fused] == fused_order
    assert all(n.score == pytest.approx(probabilities[n.node.get_content()]) for n in fused)
    assert [n.node.get_content() for n in rerank.postprocess_nodes(nodes([None] * 5), query_str=QUERY)] == alone_order
    # One node without a score: "auto" ranks by the reranker alone instead of failing.
    partial = [*RETRIEVED[:4], None]
    assert [n.node.get_content() for n in rerank.postprocess_nodes(nodes(partial), query_str=QUERY)] == alone_order


def test_haystack_reads_document_scores(reranker: Reranker, orders) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("haystack")
    from crossrank.adapters.haystack import CrossRankRanker
    from haystack import Document

    alone_order, fused_order, _ = orders
    ranker = CrossRankRanker(reranker=reranker)
    fused = ranker.run(QUERY, [Document(content=t, score=s) for t, s in zip(DOCS, RETRIEVED)])["documents"]
    assert [d.content for d in fused] == fused_order
    # Haystack hands NumPy numbers over as often as Python ones.
    numpy_scores = ranker.run(QUERY, [Document(content=t, score=np.float32(s)) for t, s in zip(DOCS, RETRIEVED)])["documents"]
    assert [d.content for d in numpy_scores] == fused_order
    plain = ranker.run(QUERY, [Document(content=t) for t in DOCS])["documents"]
    assert [d.content for d in plain] == alone_order


def test_langchain_reads_metadata_scores(reranker: Reranker, orders) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("langchain_core")
    from crossrank.adapters.langchain import CrossRankCompressor
    from langchain_core.documents import Document

    alone_order, fused_order, _ = orders
    compressor = CrossRankCompressor(reranker=reranker)
    scored = [Document(page_content=t, metadata={"score": s, "source": "bm25"}) for t, s in zip(DOCS, RETRIEVED)]
    fused = compressor.compress_documents(scored, QUERY)
    assert [d.page_content for d in fused] == fused_order
    assert [d.metadata["score"] for d in fused] == [RETRIEVED[DOCS.index(d.page_content)] for d in fused]
    plain = compressor.compress_documents([Document(page_content=t) for t in DOCS], QUERY)
    assert [d.page_content for d in plain] == alone_order
    not_a_number = [Document(page_content=t, metadata={"score": "high"}) for t in DOCS]
    assert [d.page_content for d in compressor.compress_documents(not_a_number, QUERY)] == alone_order


def test_cli_rerank_reads_score_fields(tiny_model_dir: Path, tmp_path: Path, orders, capsys) -> None:  # type: ignore[no-untyped-def]
    alone_order, fused_order, _ = orders
    with_scores = tmp_path / "scored.jsonl"
    with_scores.write_text("".join(json.dumps({"text": t, "score": s}) + "\n" for t, s in zip(DOCS, RETRIEVED)))
    without = tmp_path / "plain.jsonl"
    without.write_text("".join(json.dumps({"text": t}) + "\n" for t in DOCS))
    outputs = []
    for file in (with_scores, without):
        capsys.readouterr()
        assert main(["rerank", "--model", str(tiny_model_dir), "-q", QUERY, "-d", str(file), "--format", "json"]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert [d["text"] for d in outputs[0]["documents"]] == fused_order
    assert outputs[0]["stats"]["first_stage_weight"] == AUTO_WEIGHT
    assert [d["text"] for d in outputs[1]["documents"]] == alone_order
    assert outputs[1]["stats"]["first_stage_weight"] == 0.0
