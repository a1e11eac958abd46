"""The engine's first-stage fusion on a tiny real model: order, scores, thresholds and errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from crossrank import Calibration, ConfigurationError, InvalidInputError, InvalidInputTypeError, PlattCalibrator, Reranker
from crossrank.fusion import fuse_scores

QUERY = "capital of france"
DOCS = ["paris is the capital of france", "the cat and the dog", "berlin is a city in germany", "water", "france and paris"]
# The retriever's scores run against the tiny model's order in places, so fusion visibly reorders.
RETRIEVED = [3.0, 14.0, 9.5, 0.5, 6.0]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> Path:
    return tiny_model_dir


def _order(result) -> list[int]:  # type: ignore[no-untyped-def]
    return [d.index for d in result]


def test_the_fused_order_is_the_interpolation_of_per_query_z_scores(tiny: Path) -> None:
    plain = Reranker(str(tiny)).rerank(QUERY, DOCS)
    logits = np.zeros(len(DOCS))
    for d in plain:
        logits[d.index] = d.raw_score
    for weight in (0.3, 0.7, 1.0):
        fused = Reranker(str(tiny), first_stage_weight=weight).rerank(QUERY, DOCS, first_stage_scores=RETRIEVED)
        expected = np.argsort(-fuse_scores(logits, RETRIEVED, first_stage_weight=weight), kind="stable").tolist()
        assert _order(fused) == expected
        assert [d.rank for d in fused] == [1, 2, 3, 4, 5]
        # Only the order changes: each document keeps the reranker's own probability and logit.
        assert {d.index: (d.score, d.raw_score) for d in fused} == {d.index: (d.score, d.raw_score) for d in plain}
    assert _order(Reranker(str(tiny), first_stage_weight=1.0).rerank(QUERY, DOCS, first_stage_scores=RETRIEVED)) == [1, 2, 4, 0, 3]
    # Weight 0 ranks by the reranker alone, with or without the retriever's scores.
    assert _order(Reranker(str(tiny), first_stage_weight=0).rerank(QUERY, DOCS, first_stage_scores=RETRIEVED)) == _order(plain)
    # The default, "auto", fuses with 0.3 when the scores are given and ranks alone when they are not.
    auto = Reranker(str(tiny)).rerank(QUERY, DOCS, first_stage_scores=RETRIEVED)
    assert _order(auto) == np.argsort(-fuse_scores(logits, RETRIEVED, first_stage_weight=0.3), kind="stable").tolist()
    assert auto.stats.first_stage_weight == 0.3 and plain.stats.first_stage_weight == 0.0


def test_threshold_and_top_k_apply_as_without_fusion(tiny: Path) -> None:
    calibration = Calibration(PlattCalibrator(1.0, 0.0))
    plain = Reranker(str(tiny), calibration=calibration).rerank(QUERY, DOCS)
    cut = float(np.median([d.score for d in plain]))
    reranker = Reranker(str(tiny), calibration=calibration, first_stage_weight=1.0)
    kept = reranker.rerank(QUERY, DOCS, threshold=cut, first_stage_scores=RETRIEVED)
    # The threshold still reads the probabilities: the same documents pass, now in fused order.
    assert sorted(_order(kept)) == sorted(d.index for d in plain if d.score >= cut)
    assert _order(kept) == sorted(_order(kept), key=lambda i: -RETRIEVED[i])
    top = reranker.rerank(QUERY, DOCS, top_k=2, first_stage_scores=RETRIEVED)
    assert _order(top) == [1, 2]
    assert top.stats.best_score == max(d.score for d in plain)


def test_scores_are_checked_and_never_changed(tiny: Path) -> None:
    reranker = Reranker(str(tiny), first_stage_weight=0.4)
    with pytest.raises(InvalidInputError, match="first_stage_weight=0.4 .* request 0 needs first_stage_scores"):
        reranker.rerank(QUERY, DOCS)
    with pytest.raises(InvalidInputError, match="one score per document: expected 5, received 4"):
        reranker.rerank(QUERY, DOCS, first_stage_scores=RETRIEVED[:4])
    with pytest.raises(InvalidInputTypeError, match="document 2 must have a number; received str"):
        reranker.rerank(QUERY, DOCS, first_stage_scores=[1.0, 2.0, "3", 4.0, 5.0])
    with pytest.raises(InvalidInputError, match="document 1 must have a finite number; received nan"):
        reranker.rerank(QUERY, DOCS, first_stage_scores=[1.0, float("nan"), 3.0, 4.0, 5.0])
    with pytest.raises(InvalidInputTypeError, match="must be a list of numbers, one per document; received str"):
        reranker.rerank(QUERY, DOCS, first_stage_scores="12345")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="one entry per request: expected 2, received 1"):
        reranker.score_many([(QUERY, DOCS), (QUERY, DOCS)], first_stage_scores=[RETRIEVED])
    given = list(RETRIEVED)
    reranker.rerank(QUERY, DOCS, first_stage_scores=given)
    assert given == RETRIEVED
    # A switched-off reranker passes documents through and needs no scores.
    assert _order(Reranker(str(tiny), first_stage_weight=0.4, disabled=True).rerank(QUERY, DOCS)) == [0, 1, 2, 3, 4]


def test_many_queries_and_async_fuse_each_list_on_its_own(tiny: Path) -> None:
    reranker = Reranker(str(tiny), first_stage_weight=1.0)
    other = list(reversed(RETRIEVED))
    first, second = reranker.score_many([(QUERY, DOCS), (QUERY, DOCS)], first_stage_scores=[RETRIEVED, other])
    assert _order(first) == [1, 2, 4, 0, 3]
    assert _order(second) == [3, 2, 0, 4, 1]
    result = asyncio.run(reranker.arerank(QUERY, DOCS, first_stage_scores=np.array(RETRIEVED)))
    assert _order(result) == [1, 2, 4, 0, 3]


def test_the_weight_is_a_validated_round_tripped_setting(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match=r"first_stage_weight must be in \[0, 1\]; received 1.5"):
        Reranker(str(tiny), first_stage_weight=1.5)
    with pytest.raises(ConfigurationError, match="first_stage_weight must be a number"):
        Reranker(str(tiny), first_stage_weight="heavy")  # type: ignore[arg-type]
    monkeypatch.setenv("CROSSRANK_FIRST_STAGE_WEIGHT", "0.3")
    from_env = Reranker(str(tiny))
    assert from_env.first_stage_weight == 0.3
    assert from_env.setting_sources["first_stage_weight"] == "environment (CROSSRANK_FIRST_STAGE_WEIGHT)"
    rebuilt = Reranker.from_dict(from_env.to_dict())
    assert rebuilt.first_stage_weight == 0.3 and rebuilt.to_dict() == from_env.to_dict()


def test_a_reranker_fallback_receives_the_scores(tiny: Path, tmp_path: Path) -> None:
    fallback = Reranker(str(tiny), first_stage_weight=1.0)
    primary = Reranker(str(tmp_path / "no-such-model"), allow_download=False, fallback=fallback)
    result = primary.rerank(QUERY, DOCS, first_stage_scores=RETRIEVED)
    assert result.stats.served_by == "fallback"
    assert _order(result) == [1, 2, 4, 0, 3]
