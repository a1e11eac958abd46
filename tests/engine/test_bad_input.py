"""Odd and hostile input: a typed crossrank error naming what was received, or a documented result.

Relevance-sensitive cases run on the embedded model; the rest on the tiny model (fast).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest

import crossrank
from crossrank import CrossRankError, Document, InvalidInputError, InvalidInputTypeError, Reranker

from reliability_helpers import counting_manager

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "the cat and the dog", "berlin is a large city in germany"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> Reranker:
    return Reranker(str(tiny_model_dir)).warm_up()


def _check_ranked(result: crossrank.RerankResult, count: int) -> None:
    indices = [d.index for d in result]
    assert len(set(indices)) == len(indices) and set(indices) <= set(range(count))
    scores = [d.score for d in result]
    assert all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert [d.rank for d in result] == list(range(1, len(result) + 1))


def test_error_types_share_a_base_and_the_builtins() -> None:
    assert issubclass(InvalidInputError, CrossRankError) and issubclass(InvalidInputError, ValueError)
    assert issubclass(InvalidInputTypeError, CrossRankError) and issubclass(InvalidInputTypeError, TypeError)
    for name in crossrank.errors.__all__:
        assert issubclass(getattr(crossrank, name), CrossRankError), name
    assert issubclass(crossrank.BatchTooLargeError, CrossRankError)


# ----------------------------------------------------------------------------- queries
@pytest.mark.parametrize("query", ["", " ", "\t\n  \u3000"])
def test_empty_or_whitespace_query_is_refused(tiny: Reranker, query: str) -> None:
    with pytest.raises(InvalidInputError, match="query must contain at least one non-whitespace character") as info:
        tiny.rerank(query, DOCS)
    assert repr(query) in str(info.value), "the message shows what was received"
    with pytest.raises(InvalidInputError):
        tiny.score([(query, "text")])
    with pytest.raises(InvalidInputError):
        tiny.score_many([(QUERY, DOCS), (query, DOCS)])


@pytest.mark.parametrize("query", [None, 42, b"bytes query", ["list"]])
def test_non_string_query_is_a_type_error(tiny: Reranker, query: object) -> None:
    with pytest.raises(InvalidInputTypeError, match=f"query must be a non-empty str; received {type(query).__name__}"):
        tiny.rerank(query, DOCS)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- document lists
def test_empty_document_list_returns_empty_result_without_model_call(tiny_model_dir: Path) -> None:
    manager, plugin = counting_manager()
    reranker = Reranker(str(tiny_model_dir), backend="counting", plugin_manager=manager).warm_up()
    assert plugin.built, "the counting backend is the one in use"
    result = reranker.rerank(QUERY, [])
    assert len(result) == 0 and list(result) == [] and not result.abstained
    assert result.stats.documents == 0 and result.stats.pairs_scored == 0
    assert reranker.rerank(QUERY, [], threshold=0.5).abstained is False
    assert reranker.score([]).shape == (0,)
    assert reranker.score_many([]) == []
    assert [len(r) for r in reranker.score_many([(QUERY, []), ("another query", [])])] == [0, 0]
    assert plugin.calls == 0
    # The same reranker does call the model for a non-empty list, so the counter is live.
    reranker.rerank(QUERY, DOCS)
    assert plugin.calls >= 1


def test_empty_list_does_not_even_load_the_model(tiny_model_dir: Path) -> None:
    manager, plugin = counting_manager()
    reranker = Reranker(str(tiny_model_dir), backend="counting", plugin_manager=manager)
    assert len(reranker.rerank(QUERY, [])) == 0
    assert plugin.built == [] and not reranker.is_loaded


@pytest.mark.parametrize("documents", ["a single string", b"bytes", 42, None, {"text": "a mapping, not a list"}])
def test_documents_must_be_a_list(tiny: Reranker, documents: object) -> None:
    with pytest.raises(InvalidInputTypeError, match="documents must be a list of documents; received"):
        tiny.rerank(QUERY, documents)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (None, "document 1 is None; expected text"),
        (42, "document 1 must be a str, a crossrank.Document.*received int 42"),
        (b"\xff\xfe invalid utf-8 bytes", "document 1 must be a str.*received bytes"),
        ({"text": None}, "document 1 must have str text; received NoneType"),
        ({"text": 3.5}, "document 1 must have str text; received float"),
        (Document(text=None), "document 1 must have str text; received NoneType"),  # type: ignore[arg-type]
        ({"title": "no text key"}, "document 1 is a mapping without a 'text'"),
        ({"text": "ok", "metadata": "not a mapping"}, "document 1 metadata must be a mapping; received str"),
    ],
)
def test_bad_document_is_refused_with_its_position(tiny: Reranker, document: object, expected: str) -> None:
    with pytest.raises(InvalidInputTypeError, match=expected):
        tiny.rerank(QUERY, ["fine text", document, "more text"])


def test_empty_document_strings_are_scored_like_any_text(embedded_reranker: Reranker) -> None:
    result = embedded_reranker.rerank("capital of france", ["", "Paris is the capital of France.", "   "])
    _check_ranked(result, 3)
    assert len(result) == 3
    assert result[0].index == 1, "the real passage beats empty strings"
    assert {d.text for d in result} == {"", "Paris is the capital of France.", "   "}


def test_duplicate_documents_keep_their_own_positions_and_equal_scores(embedded_reranker: Reranker) -> None:
    docs = ["Paris is the capital of France.", "Bananas are yellow.", "Paris is the capital of France."]
    result = embedded_reranker.rerank("capital of france", docs)
    by_index = {d.index: d for d in result}
    assert sorted(by_index) == [0, 1, 2]
    assert by_index[0].score == by_index[2].score and by_index[0].raw_score == by_index[2].raw_score
    assert [d.index for d in result][:2] == [0, 2], "ties keep input order"


@pytest.mark.slow
def test_one_megabyte_document_is_truncated_and_counted(embedded_reranker: Reranker) -> None:
    big = "Paris is the capital and largest city of France. " * 21_000
    assert len(big.encode()) > 1_000_000
    result = embedded_reranker.rerank("capital of france", [big, "Bananas are yellow."])
    _check_ranked(result, 2)
    assert result.stats.truncated_documents == 1
    assert result[0].index == 0 and result[0].text is big, "the text comes back whole, not truncated"


def test_one_megabyte_document_in_window_mode_stops_at_max_windows(tiny_model_dir: Path) -> None:
    reranker = Reranker(str(tiny_model_dir), long_documents="window", max_windows=4)
    big = "the river runs through the city of paris in france " * 20_000
    result = reranker.rerank(QUERY, [big, "short"])
    _check_ranked(result, 2)
    assert result.stats.windows == 4 and result.stats.windowed_documents == 1
    assert result.stats.truncated_documents == 1, "text beyond max_windows is counted, not silently dropped"


@pytest.mark.slow
def test_ten_thousand_documents_in_one_call(tiny: Reranker) -> None:
    docs = [f"document {i} about the city of paris and the river" for i in range(10_000)]
    result = tiny.rerank(QUERY, docs)
    assert len(result) == 10_000
    assert sorted(d.index for d in result) == list(range(10_000))
    _check_ranked(result, 10_000)
    assert all(b.rows * b.length <= tiny.token_budget and b.rows <= tiny.batch_size for b in result.stats.batches)
    top = tiny.rerank(QUERY, docs, top_k=5)
    assert [d.index for d in top] == [d.index for d in result][:5]


# ----------------------------------------------------------------------------- unusual text
def test_lone_surrogates_are_replaced_not_fatal(embedded_reranker: Reranker) -> None:
    broken = b"caf\xe9 in Paris".decode("utf-8", errors="surrogateescape")  # invalid UTF-8 kept as \udce9
    docs = [broken, "The capital of France is Paris.", "x\ud800y", "emoji \ud83d\ude00 split into surrogates"]
    result = embedded_reranker.rerank("capital of france \udfff", docs)
    _check_ranked(result, 4)
    texts = {d.index: d.text for d in result}
    assert texts[0] == "caf\ufffd in Paris"
    assert texts[2] == "x\ufffdy"
    assert texts[3] == "emoji \U0001f600 split into surrogates", "a valid pair is joined, not replaced"
    assert result.query == "capital of france \ufffd"
    assert result[0].index == 1


def test_control_characters_are_kept_and_scored(embedded_reranker: Reranker) -> None:
    noisy = "Paris\x00 is\x07 the\x1b[31m capital\r\nof\x0bFrance.\x7f"
    result = embedded_reranker.rerank("capital\x00 of france", [noisy, "Bananas are yellow.", "\x00\x01\x02"])
    _check_ranked(result, 3)
    assert result[0].index == 0
    assert {d.index: d.text for d in result}[0] == noisy


def test_right_to_left_and_cjk_text(embedded_reranker: Reranker) -> None:
    docs = [
        "باريس هي عاصمة فرنسا",  # Arabic: Paris is the capital of France
        "פריז היא בירת צרפת",  # Hebrew
        "巴黎是法国的首都。",  # Chinese
        "東京は日本の首都です。",  # Japanese
        "Paris is the capital of France. \u202eecnarF\u202c",  # with a right-to-left override
    ]
    result = embedded_reranker.rerank("capital of france", docs)
    _check_ranked(result, len(docs))
    assert len(result) == len(docs)
    assert result[0].index == 4, "the English passage is the one this English model ranks first"
    assert {d.index: d.text for d in result} == dict(enumerate(docs))


# ----------------------------------------------------------------------------- top_k and thresholds
@pytest.mark.parametrize("top_k", [0, -1, -100])
def test_non_positive_top_k_is_refused(tiny: Reranker, top_k: int) -> None:
    with pytest.raises(InvalidInputError, match=f"top_k must be >= 1 .*received {top_k}"):
        tiny.rerank(QUERY, DOCS, top_k=top_k)
    with pytest.raises(InvalidInputError):
        Reranker("unused-model-name", top_k=top_k)


@pytest.mark.parametrize("top_k", [True, 1.5, "3"])
def test_non_int_top_k_is_a_type_error(tiny: Reranker, top_k: object) -> None:
    with pytest.raises(InvalidInputTypeError, match="top_k must be a positive int or None; received"):
        tiny.rerank(QUERY, DOCS, top_k=top_k)  # type: ignore[arg-type]


def test_top_k_larger_than_the_list_returns_all(tiny: Reranker) -> None:
    result = tiny.rerank(QUERY, DOCS, top_k=1000)
    assert sorted(d.index for d in result) == [0, 1, 2]
    assert [d.index for d in tiny.rerank(QUERY, DOCS, top_k=1)] == [result[0].index]


@pytest.mark.parametrize("threshold", [math.nan, math.inf, -math.inf, -0.01, 1.01, np.float64("nan")])
def test_nan_inf_and_out_of_range_thresholds_are_refused(tiny: Reranker, threshold: float) -> None:
    with pytest.raises(InvalidInputError, match="threshold must be a finite float in \\[0, 1\\]; received"):
        tiny.rerank(QUERY, DOCS, threshold=threshold)
    with pytest.raises(InvalidInputError):
        Reranker("unused-model-name", threshold=threshold)


@pytest.mark.parametrize("threshold", ["0.5", "high", True, [0.5]])
def test_threshold_of_wrong_type_is_refused(tiny: Reranker, threshold: object) -> None:
    with pytest.raises(InvalidInputTypeError, match="threshold must be a float in \\[0, 1\\]; received"):
        tiny.rerank(QUERY, DOCS, threshold=threshold)  # type: ignore[arg-type]


def test_threshold_extremes_are_honoured(tiny: Reranker) -> None:
    assert len(tiny.rerank(QUERY, DOCS, threshold=0.0)) == 3
    strict = tiny.rerank(QUERY, DOCS, threshold=1.0)
    assert all(d.score >= 1.0 for d in strict)
    assert strict.abstained == (len(strict) == 0)
    assert strict.stats.dropped_by_threshold == 3 - len(strict)


# ----------------------------------------------------------------------------- batch APIs
@pytest.mark.parametrize("pair", [("only a query",), ("q", "d", "extra"), "qd", None, ("q",) * 0])
def test_score_pairs_of_wrong_length(tiny: Reranker, pair: object) -> None:
    with pytest.raises(InvalidInputTypeError, match="pair 1 must be a \\(query, document\\) tuple; received"):
        tiny.score([(QUERY, "fine"), pair])  # type: ignore[list-item]


@pytest.mark.parametrize("request_", [(QUERY,), (QUERY, DOCS, 5), QUERY, None])
def test_score_many_requests_of_wrong_length(tiny: Reranker, request_: object) -> None:
    with pytest.raises(InvalidInputTypeError, match="request 1 must be a \\(query, documents\\) tuple; received"):
        tiny.score_many([(QUERY, DOCS), request_])  # type: ignore[list-item]


@pytest.mark.parametrize("pairs", ["a string", None, 42, {"q": "d"}])
def test_batch_apis_need_lists(tiny: Reranker, pairs: object) -> None:
    with pytest.raises(InvalidInputTypeError):
        tiny.score(pairs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputTypeError):
        tiny.score_many(pairs)  # type: ignore[arg-type]


def test_score_many_equals_separate_calls(tiny: Reranker) -> None:
    requests = [(QUERY, DOCS), ("how many people live in berlin", DOCS[::-1] + ["extra"]), ("third", [])]
    together = tiny.score_many(requests)
    for (query, docs), result in zip(requests, together):
        alone = tiny.rerank(query, docs)
        assert [d.index for d in result] == [d.index for d in alone]
        np.testing.assert_allclose([d.score for d in result], [d.score for d in alone], atol=1e-6)


# ----------------------------------------------------------------------------- no mutation
class _Node:
    """A framework-style document object with ``text`` and ``metadata`` attributes."""

    def __init__(self, text: str, metadata: dict) -> None:
        self.text = text
        self.metadata = metadata

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Node) and (self.text, self.metadata) == (other.text, other.metadata)


def test_inputs_are_never_mutated(tiny: Reranker) -> None:
    shared_meta = {"source": "wiki", "tags": ["a", "b"], "nested": {"k": 1}}
    docs = [
        "plain string",
        Document("a crossrank document", metadata=shared_meta),
        {"text": "a mapping", "id": 7, "tags": ["x"]},
        {"page_content": "langchain style", "metadata": {"page": 3}},
        _Node("an object with attributes", {"node": True}),
        "x\ud800 surrogate stays in the input",
    ]
    before = copy.deepcopy(docs)
    requests = [(QUERY, docs), ("second query", docs)]
    requests_before = copy.deepcopy(requests)
    result = tiny.rerank(QUERY, docs, top_k=4, threshold=0.0)
    tiny.score_many(requests)
    tiny.score([(QUERY, d) for d in docs])
    assert docs == before
    assert requests == requests_before
    assert docs[5] == "x\ud800 surrogate stays in the input"
    # Metadata in results is a copy: changing it leaves the caller's objects alone.
    for scored in result:
        scored.metadata["added"] = True  # type: ignore[index]
        scored.metadata.pop("source", None)  # type: ignore[union-attr]
    assert docs == before and shared_meta == {"source": "wiki", "tags": ["a", "b"], "nested": {"k": 1}}


# ----------------------------------------------------------------------------- adapters
def test_langchain_adapter_bad_input(tiny: Reranker) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document as LCDocument

    from crossrank.adapters.langchain import CrossRankCompressor

    compressor = CrossRankCompressor(reranker=tiny)
    docs = [LCDocument(page_content=t, metadata={"i": i, "tags": ["x"]}) for i, t in enumerate(DOCS)]
    before = copy.deepcopy(docs)
    assert list(compressor.compress_documents([], QUERY)) == []
    with pytest.raises(InvalidInputError, match="query must contain"):
        compressor.compress_documents(docs, "   ")
    with pytest.raises(InvalidInputError, match="threshold"):
        compressor.compress_documents(docs, QUERY, threshold=math.nan)
    with pytest.raises(InvalidInputError, match="top_n|top_k"):
        compressor.compress_documents(docs, QUERY, top_n=0)
    ranked = compressor.compress_documents(docs, QUERY)
    assert sorted(d.metadata["i"] for d in ranked) == [0, 1, 2]
    assert docs == before, "the caller's documents and their metadata are unchanged"


def test_haystack_adapter_bad_input(tiny: Reranker) -> None:
    pytest.importorskip("haystack")
    from haystack import Document as HSDocument

    from crossrank.adapters.haystack import CrossRankRanker

    ranker = CrossRankRanker(reranker=tiny)
    docs = [HSDocument(content=t, meta={"i": i}) for i, t in enumerate(DOCS)]
    before = [(d.content, dict(d.meta), d.score) for d in docs]
    assert ranker.run(query=QUERY, documents=[])["documents"] == []
    with pytest.raises(InvalidInputError, match="query must contain"):
        ranker.run(query="", documents=docs)
    with pytest.raises(InvalidInputTypeError, match=r"document 1 \(id .*\) has no text: Document.content is None"):
        ranker.run(query=QUERY, documents=[docs[0], HSDocument(content=None, meta={})])
    with pytest.raises(InvalidInputError, match="threshold"):
        ranker.run(query=QUERY, documents=docs, score_threshold=math.inf)
    assert len(ranker.run(query=QUERY, documents=docs, top_k=50)["documents"]) == 3
    assert [(d.content, dict(d.meta), d.score) for d in docs] == before


def test_llama_index_adapter_bad_input(tiny: Reranker) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, TextNode

    from crossrank.adapters.llama_index import CrossRankRerank

    postprocessor = CrossRankRerank(reranker=tiny)
    nodes = [NodeWithScore(node=TextNode(text=t, metadata={"i": i}), score=0.1 * i) for i, t in enumerate(DOCS)]
    before = [(n.node.text, dict(n.node.metadata), n.score) for n in nodes]
    assert postprocessor.postprocess_nodes([], query_str=QUERY) == []
    with pytest.raises(InvalidInputError, match="query must contain"):
        postprocessor.postprocess_nodes(nodes, query_str=" \n")
    with pytest.raises(InvalidInputError, match="needs the query"):
        postprocessor.postprocess_nodes(nodes)
    ranked = postprocessor.postprocess_nodes(nodes, query_str=QUERY)
    assert sorted(n.node.metadata["i"] for n in ranked) == [0, 1, 2]
    assert [(n.node.text, dict(n.node.metadata), n.score) for n in nodes] == before
