"""``crossrank demo``: BM25 then crossrank over crossrank's own guide, before and after."""

from __future__ import annotations

import argparse
import sys

from crossrank.cli.common import add_model_options, parse_threshold, reranker_from_args


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("demo", help="run the demo retrieval + reranking pipeline")
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--threshold", type=parse_threshold, default="calibrated", help="probability, or 'calibrated' (default: the model's fitted rule)")
    add_model_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from crossrank.demo import run_demo

    reranker = reranker_from_args(args)
    sys.stdout.write(f"crossrank demo: BM25 over crossrank's guide, reranked by {reranker.model}\n")
    run_demo(reranker, top=args.top, threshold=args.threshold, write=lambda line: sys.stdout.write(line + "\n"))
    return 0
