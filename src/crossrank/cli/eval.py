"""``crossrank eval``: rerank a BEIR-layout dataset and report ranking, abstention and calibration."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crossrank.cli.common import add_model_options, parse_threshold, parse_unit_interval, reranker_from_args
from crossrank.evaluation.candidates import BM25_STEMMERS, CANDIDATE_SOURCES

__all__ = ["register"]


def read_query_ids(path: str) -> list[str]:
    """Query ids from a file: one per line, a JSON list, or a training ``splits.json``.

    From a ``splits.json`` they are the run's held-out queries: ``dev`` plus ``dev_no_answer``.
    """
    import json

    file = Path(path)
    if not file.is_file():
        raise argparse.ArgumentTypeError(f"{path} does not exist; expected a file of query ids")
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"{path} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and "dev" in data:
            # Every query the run held out: its dev queries and, where the data has them, its
            # held-out no-answer queries (which an abstention rule needs).
            no_answer = data.get("dev_no_answer", [])
            if not isinstance(no_answer, list):
                raise argparse.ArgumentTypeError(f"{path}: 'dev_no_answer' must be a list of query ids; received {type(no_answer).__name__}")
            data = data["dev"] + no_answer if isinstance(data["dev"], list) else data["dev"]
        if not isinstance(data, list) or not all(isinstance(q, (str, int)) for q in data):
            raise argparse.ArgumentTypeError(
                f"{path} must hold a JSON list of query ids or an object with a 'dev' list; received {type(data).__name__}"
            )
        ids = [str(q) for q in data]
    else:
        ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise argparse.ArgumentTypeError(f"{path} lists no query ids")
    return ids


def _weight(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    return parse_unit_interval(text, "a number in [0, 1] or 'auto'")


def add_dataset_options(parser: argparse.ArgumentParser, *, split: str) -> None:
    parser.add_argument("dataset", metavar="DATASET_DIR", help="folder in BEIR layout (corpus.jsonl, queries.jsonl, qrels/)")
    parser.add_argument("--split", default=split, help=f"qrels split (default {split})")
    parser.add_argument("--candidates", choices=CANDIDATE_SOURCES, default="bm25",
                        help="first stage: bm25, dense (all-MiniLM-L6-v2), rrf (both fused) or the dataset's fixed lists")
    parser.add_argument("--depth", type=int, default=100, help="candidates per query (default 100)")
    parser.add_argument("--rerank-depth", type=int, default=None,
                        help="rerank only the first N candidates; the rest keep first-stage order (default: all)")
    parser.add_argument("--rrf-k0", type=int, default=60, help="RRF constant k0 (default 60)")
    parser.add_argument("--bm25-stemmer", choices=BM25_STEMMERS, default="english",
                        help="BM25 stemming (default english, Snowball); 'none' reproduces reports made before stemming")
    parser.add_argument("--queries", type=read_query_ids, default=None, metavar="FILE",
                        help="use only the queries listed in FILE: one id per line, a JSON list, or a training run's "
                        "splits.json (its held-out dev and no-answer queries)")
    parser.add_argument("--sample", type=int, default=None, help="use a seeded random sample of this many queries")
    parser.add_argument("--seed", type=int, default=0, help="seed for --sample (default 0)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="score and candidate cache (default $CROSSRANK_EVAL_CACHE or <crossrank home>/eval-cache)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a reranker on a BEIR-layout dataset",
        description="Rerank first-stage candidates of a BEIR-layout dataset and write a JSON report with "
        "ranking metrics, abstention rates and calibration error, a Markdown summary and two PNG plots.",
    )
    add_dataset_options(parser, split="test")
    add_model_options(parser)
    parser.add_argument("--first-stage-weight", type=_weight, default="auto", metavar="W",
                        help="order the reranked candidates by (1-W)*z(reranker score) + W*z(first-stage score), "
                        "per-query z-scores; 'auto' (default, as the engine) fuses with 0.3 when the candidates carry "
                        "retriever scores, 0 ranks by the reranker alone. The report shows both orders either way")
    parser.add_argument("--threshold", type=parse_threshold, default="calibrated",
                        help="abstention threshold: a probability or 'calibrated' (default; skipped if the model has none)")
    parser.add_argument("--max-false-evidence", type=float, default=0.3, help="constraint for the reference cut (default 0.3)")
    parser.add_argument("--metrics", default=None, help="comma-separated ranking metrics (default ndcg@10,mrr@10,map,...)")
    parser.add_argument("--calibration", type=Path, default=None, help="calibration JSON to use instead of the model's")
    parser.add_argument("--cached-only", action="store_true", help="score nothing; report on the pairs already cached")
    parser.add_argument("--out", type=Path, required=True, help="report JSON path (Markdown and PNGs are written beside it)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--benchmark-section", default=None, help="also write the summary to this section of BENCHMARKS.md")
    parser.add_argument("--compare", type=Path, default=None, metavar="REPORT_JSON",
                        help="another eval report on the same queries (e.g. the base model's); adds paired bootstrap and randomization tests against it")
    parser.add_argument("--note", default=None, help="a paragraph appended to the summary (e.g. why a target is missed)")
    parser.add_argument("--benchmarks-file", type=Path, default=Path("BENCHMARKS.md"), help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from crossrank.errors import InvalidInputError
    from crossrank.evaluation.report import markdown_summary, write_report
    from crossrank.evaluation.runner import DEFAULT_METRICS, EvalSetup, compare_reports, evaluate_scores, prepare

    if args.depth < 1:
        raise InvalidInputError(f"--depth must be >= 1; received {args.depth}")
    if not 0.0 <= args.max_false_evidence <= 1.0:
        raise InvalidInputError(f"--max-false-evidence must be in [0, 1]; received {args.max_false_evidence}")
    baseline = _read_report(args.compare) if args.compare is not None else None
    metrics = tuple(m.strip().lower() for m in args.metrics.split(",") if m.strip()) if args.metrics else DEFAULT_METRICS
    reranker = reranker_from_args(args, calibration=args.calibration)
    setup = EvalSetup(split=args.split, candidates=args.candidates, depth=args.depth, rrf_k0=args.rrf_k0,
                      bm25_stemmer=args.bm25_stemmer, query_ids=args.queries, sample=args.sample, seed=args.seed, rerank_depth=args.rerank_depth,
                      first_stage_weight=args.first_stage_weight)
    scored = prepare(args.dataset, setup, reranker, cache_dir=args.cache_dir, score=not args.cached_only,
                     progress=sys.stderr.isatty())
    threshold = args.threshold
    if threshold == "calibrated" and reranker.calibration.threshold is None:
        threshold = None
    report = evaluate_scores(scored, reranker.calibration, metrics=metrics, threshold=threshold,
                             max_false_evidence=args.max_false_evidence)
    if baseline is not None:
        report["comparison"] = compare_reports(report, baseline)
    if args.note:
        report["note"] = args.note.strip()
    files = write_report(report, args.out, plots=not args.no_plots)
    summary = markdown_summary({**report, "files": {}})
    sys.stdout.write(summary)
    sys.stdout.write("".join(f"wrote {path}\n" for path in files.values()))
    if args.benchmark_section:
        from crossrank.benchmarks import write_section

        write_section(args.benchmark_section, summary, path=args.benchmarks_file)
        sys.stdout.write(f"updated section {args.benchmark_section} of {args.benchmarks_file}\n")
    return 0


def _read_report(path: Path) -> dict:
    import json

    from crossrank.errors import InvalidInputError

    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"--compare: no report at {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"--compare: {path} is not a JSON report ({exc})") from None
    if not isinstance(report, dict) or "per_query" not in report:
        raise InvalidInputError(f"--compare: {path} is not a crossrank eval report with per-query values (expected a 'per_query' object)")
    return report
