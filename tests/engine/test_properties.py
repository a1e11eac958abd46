"""Property-based tests over arbitrary Unicode text and document lists (tiny real model).

Whatever the input: either one of crossrank's documented errors, or a result that is a
permutation of a subset of the input with finite scores in [0, 1]; inputs never change.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossrank.documents import has_visible_character
from crossrank import CrossRankError, Document, InvalidInputError, InvalidInputTypeError, Reranker
from crossrank.documents import clean_text

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

# Any code point: letters of every script, control characters, right-to-left marks and, which
# Hypothesis leaves out by default, lone surrogates.
characters = st.one_of(
    st.characters(),
    st.characters(min_codepoint=0, max_codepoint=0x1F),
    st.sampled_from(["\ud800", "\udfff", "\udce9", "\u202e", "\u200f", "\ufeff", "\x00", "巴", "ب"]),
)
texts = st.text(characters, max_size=120)
document = st.one_of(
    texts,
    texts.map(lambda t: Document(t, metadata={"k": t[:5]})),
    texts.map(lambda t: {"text": t, "id": len(t)}),
    texts.map(lambda t: {"page_content": t, "metadata": {"n": 1}}),
)
documents = st.lists(document, max_size=12)
thresholds = st.one_of(
    st.none(),
    st.just(False),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.0, max_value=1.0),
)
top_ks = st.one_of(st.none(), st.integers(min_value=-3, max_value=20))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> Reranker:
    return Reranker(str(tiny_model_dir), cache=None).warm_up()


def _text_of(item: object) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Document):
        return item.text
    return item.get("text", item.get("page_content"))  # type: ignore[union-attr]


@PROPERTY_SETTINGS
@given(query=texts, docs=documents, top_k=top_ks, threshold=thresholds)
def test_rerank_returns_a_ranked_subset_or_a_documented_error(
    tiny: Reranker, query: str, docs: list, top_k: int | None, threshold: float | None
) -> None:
    before = copy.deepcopy(docs)
    try:
        result = tiny.rerank(query, docs, top_k=top_k, threshold=threshold)
    except CrossRankError as exc:
        # The only reasons to refuse these inputs: a blank query, a bad top_k, a bad threshold.
        assert isinstance(exc, InvalidInputError)
        message = str(exc)
        blank = not has_visible_character(query)
        bad_top_k = top_k is not None and top_k <= 0
        bad_threshold = isinstance(threshold, float) and (math.isnan(threshold) or not 0.0 <= threshold <= 1.0)
        assert blank or bad_top_k or bad_threshold, message
        assert "received" in message
        return
    finally:
        assert docs == before, "the input list and its documents are unchanged"
    assert has_visible_character(query), "a query with no visible character must be refused"
    indices = [d.index for d in result]
    assert len(indices) == len(set(indices)), "no document appears twice"
    assert set(indices) <= set(range(len(docs))), "only input documents come back"
    if top_k is not None:
        assert len(result) <= top_k
    if threshold is None or threshold is False:
        assert len(result) == min(len(docs), top_k or len(docs))
    for scored in result:
        assert math.isfinite(scored.score) and 0.0 <= scored.score <= 1.0
        assert math.isfinite(scored.raw_score)
        assert scored.text == clean_text(_text_of(docs[scored.index]))
        if isinstance(threshold, float) and threshold is not False:
            assert scored.score >= threshold
    scores = [d.score for d in result]
    assert scores == sorted(scores, reverse=True)


@PROPERTY_SETTINGS
@given(pairs=st.lists(st.tuples(texts, texts), max_size=10))
def test_score_is_finite_in_unit_interval_or_refuses_blank_queries(tiny: Reranker, pairs: list) -> None:
    try:
        scores = tiny.score(pairs)
    except InvalidInputError:
        assert any(not has_visible_character(q) for q, _ in pairs)
        return
    assert all(has_visible_character(q) for q, _ in pairs)
    assert scores.shape == (len(pairs),)
    assert np.all(np.isfinite(scores)) and np.all((scores >= 0.0) & (scores <= 1.0))
    raw = tiny.score(pairs, raw=True)
    assert np.all(np.isfinite(raw))


@PROPERTY_SETTINGS
@given(query=texts.filter(has_visible_character), docs=st.lists(texts, min_size=1, max_size=8), data=st.data())
def test_scores_do_not_depend_on_what_else_is_in_the_call(tiny: Reranker, query: str, docs: list, data) -> None:
    """Batch invariance: a document's score is the same alone, in any order, or with others."""
    together = {d.index: d.raw_score for d in tiny.rerank(query, docs)}
    order = data.draw(st.permutations(range(len(docs))))
    shuffled = tiny.rerank(query, [docs[i] for i in order])
    for scored in shuffled:
        assert scored.raw_score == pytest.approx(together[order[scored.index]], abs=1e-4)
    one = data.draw(st.integers(min_value=0, max_value=len(docs) - 1))
    assert tiny.rerank(query, [docs[one]])[0].raw_score == pytest.approx(together[one], abs=1e-4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item=st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.integers(), max_size=2)))
def test_non_text_documents_are_type_errors_naming_their_position(tiny: Reranker, item: object) -> None:
    with pytest.raises(InvalidInputTypeError, match="document 1"):
        tiny.rerank("a query", ["fine", item])
