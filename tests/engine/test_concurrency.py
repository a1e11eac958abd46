"""One Reranker shared by many threads or coroutines gives every caller its own, correct result."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from crossrank import Reranker, RerankResult

from reliability_helpers import counting_manager
from tiny_models import WORDS

THREADS = 16
CALLS_PER_THREAD = 50


def _request(number: int) -> tuple[str, list[str]]:
    """A distinct query and document list per number, of varied lengths."""
    words = WORDS[number % len(WORDS) :] + WORDS[: number % len(WORDS)]
    query = " ".join(words[: 2 + number % 5])
    docs = [" ".join(words[(number + k) % 30 : (number + k) % 30 + 3 + (number * k) % 17]) for k in range(2 + number % 6)]
    return query, docs


def _key(result: RerankResult) -> list[tuple[int, str, float, float]]:
    return [(d.index, d.text, d.score, d.raw_score) for d in result]


@pytest.fixture(scope="module")
def shared(tiny_model_dir: Path) -> Reranker:
    # No score cache: every call must really go through the shared tokenizer and session.
    return Reranker(str(tiny_model_dir), cache=None).warm_up()


@pytest.mark.slow
def test_sixteen_threads_fifty_calls_each_match_single_threaded_results(shared: Reranker) -> None:
    total = THREADS * CALLS_PER_THREAD
    requests = [_request(n) for n in range(total)]
    assert len({(q, tuple(d)) for q, d in requests}) > total // 2, "inputs really differ between calls"
    expected = [_key(shared.rerank(q, d)) for q, d in requests]
    start = threading.Barrier(THREADS)

    def worker(thread: int) -> list[tuple[int, list]]:
        start.wait()  # all threads hit the shared tokenizer and session together
        out = []
        for call in range(CALLS_PER_THREAD):
            number = call * THREADS + thread  # interleave so neighbours run different inputs
            query, docs = requests[number]
            out.append((number, _key(shared.rerank(query, docs))))
        return out

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = [item for chunk in pool.map(worker, range(THREADS)) for item in chunk]
    assert len(outcomes) == total
    mismatches = [number for number, got in outcomes if got != expected[number]]
    assert mismatches == []


def test_threads_sharing_score_many_and_score_get_their_own_rows(shared: Reranker) -> None:
    requests = [_request(n) for n in range(64)]
    expected_many = [[_key(r) for r in shared.score_many(requests[i : i + 4])] for i in range(0, 64, 4)]
    pairs = [(q, d) for q, docs in requests for d in docs]
    expected_scores = shared.score(pairs).tolist()

    def many(i: int) -> list:
        return [_key(r) for r in shared.score_many(requests[i * 4 : i * 4 + 4])]

    with ThreadPoolExecutor(8) as pool:
        got_many = list(pool.map(many, range(16)))
        got_scores = list(pool.map(lambda _: shared.score(pairs).tolist(), range(8)))
    assert got_many == expected_many
    assert all(scores == expected_scores for scores in got_scores)


def test_concurrent_first_use_loads_the_model_once(tiny_model_dir: Path) -> None:
    manager, plugin = counting_manager()
    reranker = Reranker(str(tiny_model_dir), backend="counting", plugin_manager=manager)
    start = threading.Barrier(8)

    def first_call(number: int) -> list:
        start.wait()
        return _key(reranker.rerank(*_request(number)))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(first_call, range(8)))
    assert len(plugin.built) == 1, "exactly one backend was built for eight simultaneous first calls"
    assert results == [_key(reranker.rerank(*_request(n))) for n in range(8)]


async def _gather_with_ticker(reranker: Reranker, requests: list[tuple[str, list[str]]]) -> tuple[list, int]:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0)
            ticks += 1

    task = asyncio.create_task(ticker())
    results = await asyncio.gather(*(reranker.arerank(q, d) for q, d in requests))
    ticks_during = ticks
    stop.set()
    await task
    return results, ticks_during


def test_hundred_coroutines_get_their_own_results_and_the_loop_keeps_running(shared: Reranker) -> None:
    requests = [_request(n) for n in range(100)]
    expected = [_key(shared.rerank(q, d)) for q, d in requests]
    results, ticks = asyncio.run(_gather_with_ticker(shared, requests))
    assert [_key(r) for r in results] == expected
    # A blocking arerank would run all 100 calls before the ticker got a single turn.
    assert ticks >= 10


def test_ascore_many_matches_score_many(shared: Reranker) -> None:
    requests = [_request(n) for n in range(12)]
    expected = [_key(r) for r in shared.score_many(requests)]

    async def run() -> list[list[RerankResult]]:
        return await asyncio.gather(*(shared.ascore_many(requests) for _ in range(10)))

    for batch in asyncio.run(run()):
        assert [_key(r) for r in batch] == expected


def test_async_benchmark_reduced_run(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from crossrank.cli import main

    output = tmp_path / "BENCHMARKS.md"
    argv = ["bench", "async", "--model", str(tiny_model_dir), "--coroutines", "12", "--documents-per-call", "3",
            "--tokens", "16", "--json", "--no-write", "--output", str(output)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["coroutines"] == 12 and report["results_match_sequential"] is True
    assert report["ticks"] > 0 and report["max_stall_ms"] >= report["median_stall_ms"] >= 0
    assert not output.exists()
