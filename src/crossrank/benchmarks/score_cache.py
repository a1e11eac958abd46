"""Score cache benchmark: latency of a rerank call when its pairs were scored before.

Run ``python -m crossrank.benchmarks.score_cache --data ../shared/data/scifact``. The workload
imitates a conversation: for each of ``--queries`` SciFact queries, ``--candidates`` passages
picked by word overlap are reranked (turn 1), then reranked again (a repeated turn), then a
later turn reranks a list where ``--new`` candidates were replaced. Measured per query call
with the embedded default model:

- no cache;
- in-memory cache and SQLite cache, turn 1 (every pair a miss: scoring plus cache writes);
- in-memory cache, repeated turn (every pair a hit);
- SQLite cache read by a fresh reranker (every pair a hit, as a new process or tuning trial sees it);
- in-memory cache, later turn (``--new`` misses, the rest hits).

The section ``score-cache`` of ``BENCHMARKS.md`` is rewritten with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from crossrank.benchmarks import median_min_max, write_section
from crossrank.errors import InvalidInputError

__all__ = ["main", "load_conversations"]

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def load_conversations(data_dir: Path, *, queries: int, candidates: int, new: int) -> list[tuple[str, list[str], list[str]]]:
    """``(query, first-turn candidates, later-turn candidates)`` from a BEIR-style folder."""
    corpus_path, queries_path = data_dir / "corpus.jsonl", data_dir / "queries.jsonl"
    if not corpus_path.is_file() or not queries_path.is_file():
        raise InvalidInputError(f"{data_dir}: expected corpus.jsonl and queries.jsonl (a BEIR-style folder)")
    corpus = []
    with corpus_path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            corpus.append(" ".join(part for part in (record.get("title", ""), record["text"]) if part))
    document_words = [Counter(_words(text)) for text in corpus]
    picked = []
    with queries_path.open(encoding="utf-8") as handle:
        for line in handle:
            if len(picked) == queries:
                break
            query = json.loads(line)["text"]
            terms = set(_words(query))
            ranked = sorted(range(len(corpus)), key=lambda i: -sum(document_words[i][t] > 0 for t in terms))
            pool = [corpus[i] for i in ranked[: candidates + new]]
            picked.append((query, pool[:candidates], pool[new : new + candidates]))
    return picked


def _time_calls(reranker: object, requests: Sequence[tuple[str, list[str]]]) -> tuple[list[float], int, int]:
    latencies, hits, documents = [], 0, 0
    for query, texts in requests:
        started = time.perf_counter()
        result = reranker.rerank(query, texts)  # type: ignore[attr-defined]
        latencies.append((time.perf_counter() - started) * 1000)
        hits += result.stats.cache_hits
        documents += result.stats.documents
    return latencies, hits, documents


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crossrank.benchmarks.score_cache", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="BEIR-style folder (corpus.jsonl, queries.jsonl)")
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--new", type=int, default=5, help="candidates replaced in the later turn")
    parser.add_argument("--repeats", type=int, default=5, help="passes over the queries for cache hits")
    parser.add_argument("--model", default=None, help="model (default: the embedded default)")
    parser.add_argument("--output", default="BENCHMARKS.md")
    args = parser.parse_args(argv)

    from crossrank import Reranker
    from crossrank.score_cache import MemoryScoreCache, SqliteScoreCache

    options = {} if args.model is None else {"model": args.model}
    conversations = load_conversations(args.data, queries=args.queries, candidates=args.candidates, new=args.new)
    first_turns = [(q, first) for q, first, _ in conversations]
    later_turns = [(q, later) for q, _, later in conversations]

    load_before = os.getloadavg()[0]
    plain = Reranker(**options, cache=None).warm_up()
    memory = Reranker(**options, cache=MemoryScoreCache()).warm_up()
    rows: list[tuple[str, list[float], int, int]] = []
    with tempfile.TemporaryDirectory() as folder:
        sqlite_path = Path(folder) / "scores.sqlite"
        writer = Reranker(**options, cache=SqliteScoreCache(sqlite_path)).warm_up()
        # The three scoring configurations take turns query by query (the order rotating), so a
        # change in machine load during the run affects them alike.
        cold: dict[str, tuple[list[float], int, int]] = {"plain": ([], 0, 0), "memory": ([], 0, 0), "sqlite": ([], 0, 0)}
        contenders = [("plain", plain), ("memory", memory), ("sqlite", writer)]
        for number, request in enumerate(first_turns):
            order = contenders[number % 3 :] + contenders[: number % 3]
            for name, reranker in order:
                latencies, hits, documents = _time_calls(reranker, [request])
                before = cold[name]
                cold[name] = (before[0] + latencies, before[1] + hits, before[2] + documents)
        rows.append(("no cache", *cold["plain"]))
        rows.append(("memory cache, turn 1 (all misses)", *cold["memory"]))
        rows.append(("SQLite cache, turn 1 (all misses)", *cold["sqlite"]))
        hits_memory: list[float] = []
        hits_sqlite: list[float] = []
        counts = {"memory": [0, 0], "sqlite": [0, 0]}
        reader = Reranker(**options, cache=SqliteScoreCache(sqlite_path)).warm_up()
        for _ in range(args.repeats):
            latencies, hits, documents = _time_calls(memory, first_turns)
            hits_memory += latencies
            counts["memory"][0] += hits
            counts["memory"][1] += documents
            latencies, hits, documents = _time_calls(reader, first_turns)
            hits_sqlite += latencies
            counts["sqlite"][0] += hits
            counts["sqlite"][1] += documents
        rows.append(("memory cache, repeated turn (all hits)", hits_memory, *counts["memory"]))
        rows.append(("SQLite cache, fresh reranker (all hits)", hits_sqlite, *counts["sqlite"]))
        rows.append((f"memory cache, later turn ({args.new} of {args.candidates} new)", *_time_calls(memory, later_turns)))
        reader.cache.close()  # type: ignore[union-attr]
        writer.cache.close()  # type: ignore[union-attr]

    load_after = os.getloadavg()[0]
    baseline = statistics.median(rows[0][1])
    lines = [
        "## Score cache: hit-path speed-up",
        "",
        f"{len(conversations)} SciFact queries x {args.candidates} candidates (word-overlap picks), model "
        f"`{plain.model_id}` ({plain.backend_name}), one `rerank()` call per query; hit rows over "
        f"{args.repeats} passes. Latency per call in ms.",
        "",
        "| configuration | calls | median ms | min-max ms | cache hits | speed-up vs no cache (median) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, latencies, hits, documents in rows:
        median, low, high = median_min_max(latencies)
        lines.append(
            f"| {name} | {len(latencies)} | {median:.2f} | {low:.2f}-{high:.2f} | {hits}/{documents} | "
            f"{baseline / median:.1f}x |"
        )
    lines += [
        "",
        "A hit skips tokenization and the model; what remains is hashing the pairs, the cache lookup, "
        "calibration and sorting. The speed-up column depends on how fast the model runs on the "
        f"machine at the time (1-minute load average {load_before:.1f} at the start and {load_after:.1f} "
        f"at the end of the run, on {os.cpu_count()} logical CPUs); the hit rows' absolute latencies "
        "are the figures that carry over. The three turn-1 rows alternate query by query, so their "
        "difference is the cost of a miss (hashing plus the cache write) plus noise.",
    ]
    body = "\n".join(lines)
    write_section("score-cache", body, path=args.output, command=" ".join(["python -m crossrank.benchmarks.score_cache", *(argv if argv is not None else sys.argv[1:])]))
    sys.stdout.write(body + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
