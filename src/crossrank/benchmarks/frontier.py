"""``crossrank bench frontier``: quality of the default reranker at each max_length, and the cost of each.

Fewer tokens per pair means fewer operations: attention and the feed-forward layers scale with
the row length. This benchmark scores the same BM25 candidates of one or more BEIR test splits
at several ``max_length`` values (sentence selection, the reranker alone), with scores cached by
``crossrank eval``'s cache so reruns cost nothing, and reports per setting nDCG@10, its paired
bootstrap p-value against the best setting, the model's padded tokens per pair, and the wall
time per pair measured while scoring (only for settings scored in this run; cached ones show
"cached"). It names the fastest setting whose nDCG@10 is not significantly below the best
(p >= 0.05) on every data set.

Example:
    crossrank bench frontier --data ../shared/data/scifact,../shared/data/cranfield --depth 25 --lengths 128,192,256,384,512
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from crossrank.cli.common import parse_positive_ints

__all__ = ["register", "run_frontier"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("frontier", help="nDCG@10 and cost of the default reranker at several max_length values")
    parser.add_argument("--data", default="../shared/data/scifact", help="comma-separated BEIR folders (test split)")
    parser.add_argument("--depth", type=int, default=25, help="BM25 candidates per query")
    parser.add_argument("--lengths", type=parse_positive_ints, default=[128, 192, 256, 384, 512],
                        help="comma-separated max_length values (default 128,192,256,384,512)")
    parser.add_argument("--cache-dir", default=None, help="score cache (default: crossrank eval's)")
    parser.add_argument("--model", default=None, help="model to measure (default: the embedded default)")
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--section", default=None, help="section name (default: frontier-<depth>)")
    parser.set_defaults(handler=lambda args: run_frontier(args))


def _one(data: str, depth: int, length: int, cache_dir: str | None, model: str | None) -> dict[str, Any]:
    from crossrank import Reranker
    from crossrank.config import RerankerConfig
    from crossrank.evaluation.metrics import per_query_metric
    from crossrank.evaluation.runner import EvalSetup, prepare

    options: dict[str, Any] = {"max_length": length, "long_documents": "select", "first_stage_weight": 0.0}
    if model is not None:
        options["model"] = model
    reranker = Reranker.from_config(RerankerConfig(**options)).warm_up()
    setup = EvalSetup(split="test", candidates="bm25", depth=depth, first_stage_weight=0.0)
    cached = prepare(data, setup, reranker, cache_dir=cache_dir, score=False)
    missing = sum(len(cached.candidates[q]) - len(cached.logits.get(q, {})) for q in cached.candidates)
    started = time.perf_counter()
    scored = prepare(data, setup, reranker, cache_dir=cache_dir, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - started
    per_query = per_query_metric(scored.judgments(), scored.ranking(0.0), "ndcg@10")
    texts = [(scored.dataset.queries[q], scored.dataset.document(d)) for q in scored.query_ids for d in scored.candidates[q][:depth]]
    sample = texts[:: max(1, len(texts) // 500)]
    queries = sorted({q for q, _ in sample})
    segments, _ = reranker.loaded.encoder.encode(queries, [t for _, t in sample], [queries.index(q) for q, _ in sample])
    tokens = sum(len(s.input_ids) for s in segments) / max(1, len(sample))
    reranker.close()
    return {
        "ndcg": per_query,
        "mean": sum(per_query.values()) / max(1, len(per_query)),
        "tokens": tokens,
        "scored": missing,
        "ms_per_pair": (seconds * 1000 / missing) if missing >= 100 else None,
        "pairs": sum(len(v) for v in scored.logits.values()),
    }


def run_frontier(args: argparse.Namespace) -> int:
    from crossrank.benchmarks import write_section
    from crossrank.evaluation.significance import paired_bootstrap

    lengths = list(args.lengths)
    datasets = [d.strip() for d in args.data.split(",") if d.strip()]
    rows: list[str] = []
    acceptable: dict[int, bool] = {length: True for length in lengths}
    for data in datasets:
        results = {length: _one(data, args.depth, length, args.cache_dir, args.model) for length in lengths}
        best = max(lengths, key=lambda length: results[length]["mean"])
        for length in lengths:
            result = results[length]
            test = paired_bootstrap(results[best]["ndcg"], result["ndcg"]) if length != best else None
            p = "best" if test is None else f"{test.p_value:.3f}"
            if test is not None and test.difference < 0 and test.p_value < 0.05:
                acceptable[length] = False
            if result["ms_per_pair"] is not None:
                cost = f"{result['ms_per_pair']:.1f}"
            else:
                cost = "cached" if result["scored"] == 0 else "too few to time"
            rows.append(
                f"| {Path(data).name} | {length} | {result['mean']:.4f} | {p} | {result['tokens']:.0f} | {cost} | {result['pairs']:,} |"
            )
    chosen = min((length for length in lengths if acceptable[length]), default=None)
    body = "\n".join([
        f"## Quality and cost against max_length (BM25 top {args.depth}, sentence selection)",
        "",
        "The embedded default, reranker alone (no fusion), on every judged test query of each data set. p: paired "
        "bootstrap of nDCG@10 against the best setting of that data set. Tokens: mean tokens per model row on a "
        "sample of 500 pairs (what the model computes on). ms/pair: wall time per pair while this run scored "
        "(\"cached\": scored by an earlier run; fewer than 100 pairs are not timed).",
        "",
        "| data | max_length | nDCG@10 | p vs best | tokens/pair | ms/pair | pairs |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Shortest max_length not significantly below the best on every data set: {chosen}.",
    ])
    write_section(args.section or f"frontier-{args.depth}", body, path=args.output)
    sys.stdout.write(body + "\n")
    return 0
