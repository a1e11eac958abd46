"""Bounded memory: model calls stay within the token budget, out-of-memory batches are halved.

The RSS figures themselves come from ``crossrank bench memory`` (BENCHMARKS.md); these tests
check the mechanisms that bound memory on a real model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crossrank import BatchTooLargeError, CrossRankError, Reranker
from crossrank.cli import main

from reliability_helpers import counting_manager

QUERY = "what is the capital of france"


def _docs(count: int) -> list[str]:
    base = "the river runs through the city of paris in france and the population is large"
    return [f"{count - i} {base[: 10 + (i * 7) % 70]}" for i in range(count)]


@pytest.mark.parametrize(("batch_size", "token_budget"), [(32, 16384), (64, 512), (8, 128)])
def test_every_model_call_stays_within_the_token_budget(tiny_model_dir: Path, batch_size: int, token_budget: int) -> None:
    manager, plugin = counting_manager()
    reranker = Reranker(
        str(tiny_model_dir), backend="counting", plugin_manager=manager, batch_size=batch_size,
        token_budget=token_budget, cache=None,
    )
    result = reranker.rerank(QUERY, _docs(1500))
    assert len(result) == 1500
    shapes = plugin.built[0].shapes
    assert len(shapes) == len(result.stats.batches) and plugin.calls == len(shapes)
    assert all(rows * length <= token_budget and rows <= batch_size for rows, length in shapes)
    assert sum(rows for rows, _ in shapes) == result.stats.pairs_scored == 1500


def test_scoring_in_slices_gives_the_same_scores_as_small_calls(tiny_model_dir: Path) -> None:
    """Long lists are tokenized and scored slice by slice; no score may depend on the slicing."""
    reranker = Reranker(str(tiny_model_dir), cache=None)
    docs = _docs(700)  # more than two encoding slices
    together = reranker.score([(QUERY, d) for d in docs], raw=True)
    pieces = np.concatenate([reranker.score([(QUERY, d) for d in docs[i : i + 50]], raw=True) for i in range(0, 700, 50)])
    np.testing.assert_allclose(together, pieces, atol=1e-4)
    windowed = Reranker(str(tiny_model_dir), long_documents="window", max_length=32, cache=None)
    long_docs = [d * 3 for d in docs[:300]]
    stats = windowed.rerank(QUERY, long_docs).stats
    assert stats.windowed_documents > 256 and stats.windows > stats.windowed_documents
    alone = [windowed.rerank(QUERY, [d])[0].raw_score for d in long_docs[250:262]]
    both = {d.index: d.raw_score for d in windowed.rerank(QUERY, long_docs)}
    np.testing.assert_allclose([both[i] for i in range(250, 262)], alone, atol=1e-4)


def test_out_of_memory_batches_are_halved_and_retried(tiny_model_dir: Path) -> None:
    plain = Reranker(str(tiny_model_dir), batch_size=32, cache=None).rerank(QUERY, _docs(100))
    manager, plugin = counting_manager(max_rows=5)
    limited = Reranker(str(tiny_model_dir), backend="counting", plugin_manager=manager, batch_size=32, cache=None)
    result = limited.rerank(QUERY, _docs(100))
    backend = plugin.built[0]
    assert backend.refused > 0, "the simulated device did run out of memory"
    assert all(rows <= 5 for rows, _ in backend.shapes)
    assert sum(rows for rows, _ in backend.shapes) == 100
    assert [d.index for d in result] == [d.index for d in plain]
    np.testing.assert_allclose([d.raw_score for d in result], [d.raw_score for d in plain], atol=1e-4)
    assert max(b.rows for b in result.stats.batches) <= 5


def test_out_of_memory_on_a_single_row_is_a_typed_error(tiny_model_dir: Path) -> None:
    manager, _ = counting_manager(max_rows=0)
    reranker = Reranker(str(tiny_model_dir), backend="counting", plugin_manager=manager, cache=None)
    with pytest.raises(BatchTooLargeError) as info:
        reranker.rerank(QUERY, _docs(4))
    assert isinstance(info.value, CrossRankError) and isinstance(info.value, MemoryError)


@pytest.mark.slow
def test_memory_benchmark_reduced_run(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "BENCHMARKS.md"
    code = main(["bench", "memory", "--quick", "--model", str(tiny_model_dir), "--json", "--output", str(output)])
    assert code == 0
    points = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [p["documents"] for p in points] == [20, 60]
    for point in points:
        assert point["pairs_scored"] == point["documents"]
        assert 0 < point["largest_batch_tokens"] <= point["token_budget"]
        assert point["peak_rss_mib"] >= point["rss_before_mib"] > 0
    assert not output.exists(), "--quick never writes BENCHMARKS.md"
