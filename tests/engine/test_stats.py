"""Per-call stats: on the result, in DEBUG logs of the "crossrank" logger, and through on_stats."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from crossrank import BatchShape, ConfigurationError, Reranker, RerankStats

QUERY = "what is the capital of france"
LONG = "the river flows through paris in france and many boats pass by " * 30
DOCS = ["paris is the capital of france", "the cat and the dog", LONG, "berlin is a city in germany"]


def test_counts_shapes_and_timings_are_on_the_result(tiny_model_dir: Path) -> None:
    truncating = Reranker(str(tiny_model_dir), max_length=48, batch_size=2).rerank(QUERY, DOCS, threshold=0.0)
    stats = truncating.stats
    assert stats.documents == 4 and stats.pairs_scored == 4
    assert stats.truncated_documents == 1 and stats.windows == 0
    assert sum(b.rows for b in stats.batches) == 4
    assert all(isinstance(b, BatchShape) and b.rows <= 2 and b.length <= 48 for b in stats.batches)
    assert stats.backend == "onnx" and stats.model.startswith(tiny_model_dir.name)
    assert stats.served_by == "primary"
    assert stats.best_score == max(d.score for d in truncating)
    assert stats.tokenize_ms > 0 and stats.model_ms > 0 and stats.post_ms > 0
    assert stats.total_ms >= stats.tokenize_ms + stats.model_ms

    windowing = Reranker(str(tiny_model_dir), max_length=48, long_documents="window", max_windows=64).rerank(QUERY, DOCS)
    assert windowing.stats.windowed_documents == 1
    assert windowing.stats.windows > 1
    assert windowing.stats.pairs_scored == 3 + windowing.stats.windows
    assert windowing.stats.truncated_documents == 0


def test_threshold_drops_and_abstention_are_counted(tiny_model_dir: Path) -> None:
    reranker = Reranker(str(tiny_model_dir))
    scores = sorted(d.score for d in reranker.rerank(QUERY, DOCS))
    cut = (scores[1] + scores[2]) / 2
    partial = reranker.rerank(QUERY, DOCS, threshold=cut)
    assert partial.stats.dropped_by_threshold == 2 and len(partial) == 2 and not partial.stats.abstained
    nothing = reranker.rerank(QUERY, DOCS, threshold=1.0)
    assert nothing.stats.dropped_by_threshold == 4 and nothing.stats.abstained and nothing.abstained


def test_stats_reach_the_hook_and_the_debug_log(tiny_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[RerankStats] = []
    reranker = Reranker(str(tiny_model_dir), on_stats=seen.append)
    with caplog.at_level(logging.DEBUG, logger="crossrank"):
        results = reranker.score_many([(QUERY, DOCS), ("how many people live in berlin", DOCS[:2])])
    assert seen == [results[0].stats, results[1].stats]
    assert [s.documents for s in seen] == [4, 2]
    records = [r for r in caplog.records if r.name == "crossrank" and r.getMessage().startswith("rerank stats")]
    assert len(records) == 2
    assert records[0].levelno == logging.DEBUG
    assert records[0].crossrank_stats == results[0].stats.to_dict()  # type: ignore[attr-defined]


def test_stats_of_fallback_and_disabled_calls(tiny_model_dir: Path, tmp_path: Path) -> None:
    seen: list[RerankStats] = []
    fallback = Reranker(str(tiny_model_dir))
    primary = Reranker(str(tmp_path / "missing"), allow_download=False, fallback=fallback, on_stats=seen.append)
    result = primary.rerank(QUERY, DOCS)
    assert seen == [result.stats]
    assert result.stats.served_by == "fallback"
    assert result.stats.backend == "onnx" and result.stats.model == fallback.model_id
    assert result.stats.pairs_scored == 4 and result.stats.batches
    off = Reranker(str(tmp_path / "missing"), disabled=True, on_stats=seen.append).rerank(QUERY, DOCS)
    assert seen[-1] is off.stats and off.stats.served_by == "disabled" and off.stats.documents == 4


def test_a_failing_hook_does_not_fail_the_call(tiny_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken(stats: RerankStats) -> None:
        raise RuntimeError("metrics backend unreachable")

    with caplog.at_level(logging.WARNING, logger="crossrank"):
        result = Reranker(str(tiny_model_dir), on_stats=broken).rerank(QUERY, DOCS)
    assert len(result) == 4
    assert any("on_stats hook" in r.getMessage() and r.exc_info for r in caplog.records)
    with pytest.raises(ConfigurationError, match="on_stats"):
        Reranker(str(tiny_model_dir), on_stats="prometheus")  # type: ignore[arg-type]


def test_the_library_configures_no_logging(tiny_model_dir: Path) -> None:
    library_logger = logging.getLogger("crossrank")
    handlers_before = list(library_logger.handlers)
    root_before = (logging.getLogger().level, list(logging.getLogger().handlers))
    Reranker(str(tiny_model_dir)).rerank(QUERY, DOCS)
    assert library_logger.handlers == handlers_before
    assert (logging.getLogger().level, list(logging.getLogger().handlers)) == root_before
