"""Token-budget batching: every row once, budgets respected, memory bounded as input grows."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from crossrank import Reranker
from crossrank.batching import pad_batch, plan_batches


@pytest.mark.parametrize("seed", range(5))
def test_plan_respects_budget_and_keeps_every_row(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(3, 300) for _ in range(rng.randint(1, 400))]
    batches = plan_batches(lengths, batch_size=16, token_budget=1024)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 16
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 1024


def test_rows_longer_than_budget_run_alone() -> None:
    assert plan_batches([50, 10, 10], batch_size=8, token_budget=40) == [[0], [1, 2]]


def test_length_sorting_limits_padding() -> None:
    lengths = [10, 200, 11, 199, 12, 198]
    batches = plan_batches(lengths, batch_size=3, token_budget=10_000)
    assert [sorted(lengths[i] for i in b) for b in batches] == [[198, 199, 200], [10, 11, 12]]


def test_pad_batch_marks_padding() -> None:
    import numpy as np

    ids, mask, types = pad_batch([(np.array([1, 2, 3]), np.array([0, 0, 1])), (np.array([4]), np.array([0]))], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert types.tolist() == [[0, 0, 1], [0, 0, 0]]


def test_largest_model_call_does_not_grow_with_input(tiny_model_dir: Path) -> None:
    reranker = Reranker(str(tiny_model_dir), max_length=64, batch_size=64, token_budget=512)
    rng = random.Random(0)
    words = "the cat dog sun moon water fire earth river city".split()
    largest = []
    for count in (10, 100, 1000):
        documents = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 80))) for _ in range(count)]
        stats = reranker.rerank("what is the river", documents).stats
        assert stats.pairs_scored == count
        largest.append(max(b.rows * b.length for b in stats.batches))
    assert all(cells <= 512 for cells in largest)
    assert sum(b for b in largest) > 0


def test_score_many_matches_separate_calls(tiny_model_dir: Path) -> None:
    reranker = Reranker(str(tiny_model_dir))
    requests = [("capital of france", ["paris is the capital", "the cat"]), ("berlin people", ["many people live in berlin", "", "sun"])]
    together = reranker.score_many(requests)
    for (query, docs), result in zip(requests, together):
        alone = reranker.rerank(query, docs)
        assert [(d.index, round(d.raw_score, 5)) for d in result] == [(d.index, round(d.raw_score, 5)) for d in alone]
        assert result.stats.documents == len(docs)
