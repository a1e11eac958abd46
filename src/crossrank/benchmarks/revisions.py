"""``crossrank bench revisions``: the same reranking workload on two revisions of crossrank, side by side.

A refactor must not slow the engine down. This benchmark checks out a baseline revision into a
temporary git worktree and runs one identical workload with each revision's ``crossrank``
package, in fresh processes, interleaved (baseline, current, baseline, current, ...), so both
see the same machine state. The workload: the first N judged SciFact test claims, each with its
BM25 top-``depth`` abstracts, reranked with ``Reranker(model=<embedded default folder>)`` at its
defaults (one warm-up pass, then timed calls). Reported per revision: median over repeats of
pairs per second and of the p50/p95 latency of one query's call.

Example:
    crossrank bench revisions --baseline HEAD~5 --queries 10 --depth 25 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["register", "run_revisions"]

_CHILD = r"""
import json, sys, time
from crossrank import Reranker
work = json.load(open(sys.argv[1], encoding="utf-8"))
reranker = Reranker(work["model"]).warm_up()
for query, docs in work["requests"][:2]:
    reranker.rerank(query, docs)
latencies = []
pairs = 0
for query, docs in work["requests"]:
    started = time.perf_counter()
    result = reranker.rerank(query, docs)
    latencies.append((time.perf_counter() - started) * 1000)
    pairs += len(docs)
    assert len(result) == len(docs)
print(json.dumps({"latencies_ms": latencies, "pairs": pairs, "module": __import__("crossrank").__file__}))
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("revisions", help="the same workload on a baseline revision and on this tree, interleaved")
    parser.add_argument("--baseline", required=True, help="git revision to compare against (e.g. HEAD~3 or a commit)")
    parser.add_argument("--data", default="../shared/data/scifact", help="BEIR folder (default: ../shared/data/scifact)")
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--depth", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--section", default="engine-revisions")
    parser.set_defaults(handler=lambda args: run_revisions(args))


def _workload(data: Path, queries: int, depth: int, model: str) -> dict[str, Any]:
    from crossrank.benchmarks.speed import load_workload

    workload = load_workload(data, queries=queries, depth=depth)
    return {"model": model, "requests": [[q, list(texts)] for q, texts in zip(workload.queries, workload.texts)]}


def _run_child(tree: Path, workload: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSRANK_") or k in ("CROSSRANK_HOME",)}
    env["PYTHONPATH"] = str(tree / "src")
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(workload)], capture_output=True, text=True, env=env, cwd=tempfile.gettempdir()
    )
    if done.returncode != 0:
        from crossrank.errors import CrossRankError

        raise CrossRankError(f"benchmark run with {tree} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_revisions(args: argparse.Namespace) -> int:
    from crossrank.benchmarks import write_section
    from crossrank.errors import CrossRankError
    from crossrank.models.resolve import pull_model
    from crossrank.models.sources import DEFAULT_MODEL

    repo = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True).stdout.strip())
    baseline = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", args.baseline], capture_output=True, text=True)
    if baseline.returncode != 0:
        raise CrossRankError(f"--baseline: expected a git revision of {repo}; received {args.baseline!r}")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "src"], capture_output=True, text=True).stdout.strip())
    model = str(pull_model(DEFAULT_MODEL).path)
    with tempfile.TemporaryDirectory(prefix="crossrank-revisions-") as scratch:
        old_tree = Path(scratch) / "baseline"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(old_tree), args.baseline],
                       capture_output=True, text=True, check=True)
        try:
            workload = Path(scratch) / "workload.json"
            workload.write_text(json.dumps(_workload(Path(args.data), args.queries, args.depth, model)), encoding="utf-8")
            runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "current": []}
            for _ in range(args.repeats):
                for label, tree in (("baseline", old_tree), ("current", repo)):
                    runs[label].append(_run_child(tree, workload))
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(old_tree)], capture_output=True)
    rows = []
    summary = {}
    for label in ("baseline", "current"):
        per_run = runs[label]
        rate = statistics.median(r["pairs"] / (sum(r["latencies_ms"]) / 1000) for r in per_run)
        p50 = statistics.median(statistics.median(r["latencies_ms"]) for r in per_run)
        p95 = statistics.median(sorted(r["latencies_ms"])[max(0, int(round(0.95 * len(r["latencies_ms"]))) - 1)] for r in per_run)
        summary[label] = rate
        name = f"baseline `{baseline.stdout.strip()}`" if label == "baseline" else f"this tree (`{head}`{' + uncommitted changes' if dirty else ''})"
        rows.append(f"| {name} | {rate:.1f} | {p50:.0f} | {p95:.0f} |")
    ratio = summary["current"] / summary["baseline"]
    body = "\n".join(
        [
            f"## Engine revisions: {args.baseline} vs this tree",
            "",
            f"Workload: the first {args.queries} judged SciFact test claims, each with its BM25 top {args.depth}, reranked by "
            "`Reranker(model=<embedded default folder>)` at its defaults; each revision in a fresh process, interleaved, "
            f"median of {args.repeats} runs.",
            "",
            "| code | pairs/s | p50 ms per query | p95 ms per query |",
            "|---|---|---|---|",
            *rows,
            "",
            f"This tree runs at {ratio:.3f}x the baseline's pairs per second.",
        ]
    )
    write_section(args.section, body, path=args.output)
    sys.stdout.write(body + "\n")
    return 0
