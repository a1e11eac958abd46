"""``crossrank rerank``: rerank documents from a JSONL file for one query."""

from __future__ import annotations

import argparse
import shutil
import sys

from crossrank.cli.common import read_jsonl_documents, write_json
from crossrank.cli.options import add_reranker_options, reranker_from_args
from crossrank.fusion import retriever_scores
from crossrank.results import RerankResult


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "rerank",
        help="rerank documents for a query",
        description="Rerank documents (JSONL: one JSON string or {\"text\": ...} object per line; an object's "
        "\"score\" is its retriever score for --first-stage-weight).",
    )
    parser.add_argument("--query", "-q", required=True)
    parser.add_argument("--documents", "-d", required=True, help="JSONL file, or - for stdin")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    add_reranker_options(parser, decision=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    documents = read_jsonl_documents(args.documents)
    # --top-k, --threshold and --first-stage-weight are reranker options like the others: left
    # out, they come from the environment, then the configuration file, then the defaults.
    reranker = reranker_from_args(args)
    scores = retriever_scores(
        [d.get("score") if isinstance(d, dict) else None for d in documents],
        weight=reranker.first_stage_weight,
        where='the "score" field',
    )
    result = reranker.rerank(args.query, documents, first_stage_scores=scores)
    if args.format == "json":
        write_json(result.to_dict(), sys.stdout)  # strict JSON: NaN (disabled reranking) becomes null
    else:
        sys.stdout.write(format_table(result))
    return 0


def format_table(result: RerankResult) -> str:
    width = shutil.get_terminal_size((100, 20)).columns
    text_width = max(20, width - 34)
    lines = [f"{'rank':>4}  {'score':>6}  {'logit':>7}  {'input':>5}  text"]
    for doc in result:
        text = " ".join(doc.text.split())
        if len(text) > text_width:
            text = text[: text_width - 1] + "…"
        lines.append(f"{doc.rank:>4}  {doc.score:>6.3f}  {doc.raw_score:>7.2f}  {doc.index:>5}  {text}")
    if result.abstained:
        lines.append(f"no document reached the threshold {result.threshold:.3f}: nothing here is relevant")
    stats = result.stats
    notes = []
    if stats.truncated_documents:
        notes.append(f"{stats.truncated_documents} truncated")
    if stats.windowed_documents:
        notes.append(f"{stats.windowed_documents} windowed into {stats.windows} windows")
    if stats.truncated_queries:
        notes.append("query truncated")
    if notes:
        lines.append("note: " + ", ".join(notes))
    return "\n".join(lines) + "\n"
