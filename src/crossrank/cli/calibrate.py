"""``crossrank calibrate``: fit a calibration and abstention rule on labelled data of your domain.

Three sources of labels (exactly one): ``--beir DIR`` (a BEIR-layout folder and a split, with
candidates retrieved and scored as ``crossrank eval`` does, through its score cache),
``--pairs FILE`` (JSONL or CSV/TSV rows of query, text, label and an optional query_id; a label
above ``--relevant-above``, default 0, is relevant) and ``--feedback LOG`` (a
:class:`~crossrank.feedback.FeedbackLog`: used documents are relevant, shown and unused ones are
not). The calibration is written beside the model (``--model PATH``), into a domain's slot
that ``Reranker(domain=NAME)`` reads (``--domain NAME``), or to ``--out FILE``.

It reports the held-out calibration error (ECE) with a bootstrap interval, and refuses (exit
code 2, nothing written) data smaller than the rule of :func:`crossrank.evaluation.fitting.check_enough`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crossrank.cli.common import add_model_options, parse_unit_interval, reranker_from_args
from crossrank.cli.eval import read_query_ids
from crossrank.evaluation.candidates import BM25_STEMMERS, CANDIDATE_SOURCES

__all__ = ["register"]

_BOOTSTRAP_SAMPLES = 1000
_BEIR_TOP = 10


def _name_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated names; received {text!r}")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from crossrank.evaluation.fitting import DATA_RULE

    parser = subparsers.add_parser(
        "calibrate",
        help="fit calibration and abstention on labelled data of your domain (BEIR folder, pairs file or feedback log)",
        description="Fit a calibrator, a probability threshold and an abstention rule on labelled queries and write "
        "calibration.json beside a model (--model), into a domain's slot (--domain) or to a file (--out). Reports the "
        f"held-out calibration error with a bootstrap interval; writes nothing for less data than it needs ({DATA_RULE}).",
    )
    source = parser.add_argument_group("labelled data (exactly one)").add_mutually_exclusive_group(required=True)
    source.add_argument("--beir", type=Path, metavar="DIR", help="a BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/)")
    source.add_argument("--pairs", type=Path, metavar="FILE",
                        help="JSONL or CSV/TSV with query, text, label and optional query_id")
    source.add_argument("--feedback", type=Path, metavar="LOG", help="a feedback log (.jsonl or .sqlite) recorded by crossrank.feedback")
    where = parser.add_argument_group("where to write")
    where.add_argument("--domain", default=None, help="write the domain's calibration (<crossrank home>/domains/NAME/calibration.json); "
                       "scores with the domain's model when it has one")
    where.add_argument("--out", type=Path, default=None, help="write the calibration JSON to this file")
    where.add_argument("--dry-run", action="store_true", help="fit and report, write nothing")
    add_model_options(parser)
    beir = parser.add_argument_group("--beir options")
    beir.add_argument("--split", default="test", help="qrels split (default test)")
    beir.add_argument("--candidates", choices=CANDIDATE_SOURCES, default="bm25", help="first stage (default bm25)")
    beir.add_argument("--depth", type=int, default=30, help="candidates per query (default 30)")
    beir.add_argument("--rerank-depth", type=int, default=None, help=argparse.SUPPRESS)
    beir.add_argument("--rrf-k0", type=int, default=60, help=argparse.SUPPRESS)
    beir.add_argument("--bm25-stemmer", choices=BM25_STEMMERS, default="english", help="BM25 stemming (default english)")
    beir.add_argument("--queries", type=read_query_ids, default=None, metavar="FILE", help="use only the queries listed in FILE")
    beir.add_argument("--sample", type=int, default=None, help="use a seeded random sample of this many queries")
    beir.add_argument("--include-judged", action="store_true", help="add judged-relevant documents missing from the candidates")
    beir.add_argument("--cache-dir", type=Path, default=None, help="score and candidate cache (as crossrank eval)")
    pairs = parser.add_argument_group("--pairs options")
    pairs.add_argument("--relevant-above", type=float, default=0.0,
                       help="a pair is relevant when its label is above this (default 0: graded labels 1+ are relevant)")
    feedback = parser.add_argument_group("--feedback options")
    feedback.add_argument("--use-kinds", type=_name_list, default=None, metavar="LIST",
                          help="count only these kinds of use as relevant, e.g. click,citation (default: every kind)")
    feedback.add_argument("--rescore", action="store_true",
                          help="score the log's stored texts again instead of using its recorded raw scores (needs store_text=True)")
    fitting = parser.add_argument_group("fitting")
    fitting.add_argument("--calibrators", type=_name_list, default=["platt"],
                         help="calibrator kinds, compared by held-out ECE when several (default platt: with 25-50 labelled "
                         "queries it was as good as or better than choosing between platt and isotonic; isotonic and "
                         "temperature also available)")
    fitting.add_argument("--abstention-rules", type=_name_list, default=["max-score", "logistic"],
                         help="abstention rules compared (default max-score,logistic)")
    fitting.add_argument("--max-false-evidence", type=lambda t: parse_unit_interval(t), default=0.3,
                         help="abstention constraint: share of no-answer queries still answered (default 0.3)")
    fitting.add_argument("--fit-top", type=int, default=None, metavar="K",
                         help=f"fit and measure on each query's K best-scored documents, those a reranker hands on "
                         f"(default {_BEIR_TOP} with --beir, every pair with --pairs and --feedback)")
    fitting.add_argument("--holdout", type=float, default=0.3, help="share of queries held out to choose and report (default 0.3)")
    fitting.add_argument("--seed", type=int, default=0, help="seed of --sample and of the held-out draw (default 0)")
    fitting.add_argument("--fitted-on", default=None, help="free-text description of the data for the provenance")
    parser.set_defaults(handler=run)


def _destination(args: argparse.Namespace, reranker: Any) -> Path | None:
    from crossrank.calibration import CALIBRATION_FILENAME
    from crossrank.models.domains import domain_calibration_path

    if args.out is not None:
        return args.out
    if args.domain is not None:
        return domain_calibration_path(args.domain)
    if args.model is not None:
        return Path(reranker.model_path) / CALIBRATION_FILENAME
    return None


def _beir_data(args: argparse.Namespace, reranker: Any) -> tuple[Any, dict[str, Any]]:
    from crossrank.errors import InvalidInputError
    from crossrank.evaluation.fitting import MIN_QUERIES, check_enough
    from crossrank.evaluation.runner import EvalSetup, labelled_queries, prepare

    if args.depth < 1:
        raise InvalidInputError(f"--depth must be >= 1; received {args.depth}")
    for name, count in (("--sample", args.sample), ("--queries", len(args.queries) if args.queries else None)):
        # Refused before anything is scored.
        if count is not None and count < MIN_QUERIES:
            raise InvalidInputError(
                f"not enough labelled data to fit a calibration: {name} selects {count} queries (need {MIN_QUERIES}: "
                f"{MIN_QUERIES - count} more); nothing was scored or written"
            )
    setup = EvalSetup(split=args.split, candidates=args.candidates, depth=args.depth, rrf_k0=args.rrf_k0,
                      bm25_stemmer=args.bm25_stemmer, query_ids=args.queries, sample=args.sample, seed=args.seed,
                      include_judged=args.include_judged, rerank_depth=args.rerank_depth)
    scored = prepare(args.beir, setup, reranker, cache_dir=args.cache_dir, progress=sys.stderr.isatty())
    data = labelled_queries(scored)
    check_enough(data, str(args.beir), top=args.fit_top)
    judged = " plus the judged-relevant documents" if args.include_judged else ""
    described = (f"{scored.dataset.name} split '{args.split}', {len(data.query_ids())} queries; "
                 f"{args.candidates} top-{args.depth} candidates{judged}; labels {data.source}")
    return data, {"source": "beir", "dataset": scored.dataset.name, "path": str(args.beir), "split": args.split,
                  "setup": setup.to_dict(), "fitted_on": described}


def _pairs_data(args: argparse.Namespace, reranker: Any) -> tuple[Any, dict[str, Any]]:
    from crossrank.evaluation.fitting import LabelledQueries, check_enough
    from crossrank.evaluation.labelled import from_pairs, read_pairs

    rows = read_pairs(args.pairs)
    # Count before scoring: a file that is too small is refused without running the model.
    labels: dict[str, dict[str, float]] = {}
    for row in rows:
        key = row.query_id if row.query_id is not None else row.query
        labels.setdefault(key, {})[str(row.line)] = 1.0 if row.label > args.relevant_above else 0.0
    if args.fit_top is None:
        check_enough(LabelledQueries({q: {d: 0.0 for d in docs} for q, docs in labels.items()}, labels), str(args.pairs))
    data = from_pairs(rows, reranker, relevant_above=args.relevant_above,
                      source=f"pairs file {args.pairs.name}: label > {args.relevant_above:g} relevant")
    check_enough(data, str(args.pairs), top=args.fit_top)
    return data, {"source": "pairs", "path": str(args.pairs), "relevant_above": args.relevant_above,
                  "fitted_on": f"{len(data.query_ids())} queries of {args.pairs.name} (label > {args.relevant_above:g} relevant)"}


def _feedback_data(args: argparse.Namespace, reranker: Any) -> tuple[Any, dict[str, Any]]:
    from crossrank.evaluation.fitting import check_enough
    from crossrank.evaluation.labelled import from_feedback
    from crossrank.feedback import FeedbackLog

    log = FeedbackLog(args.feedback)
    impressions = log.impressions()
    if log.corrupt_records:
        sys.stderr.write(f"note: skipped {len(log.corrupt_records)} corrupt records of {args.feedback}\n")
    data = from_feedback(impressions, model_id=reranker.model_id, reranker=reranker, rescore=args.rescore, kinds=args.use_kinds)
    for model, count in data.extra.get("skipped_models", {}).items():
        sys.stderr.write(f"note: skipped {count} impressions scored by {model}, not by {reranker.model_id}\n")
    check_enough(data, str(args.feedback), top=args.fit_top)
    kinds = f" ({', '.join(args.use_kinds)})" if args.use_kinds else ""
    return data, {"source": "feedback", "path": str(args.feedback), "use_kinds": args.use_kinds, "rescored": args.rescore,
                  "fitted_on": f"{len(data.query_ids())} impressions of feedback log {args.feedback.name}: shown documents "
                               f"used{kinds} = relevant, shown and not used = not relevant"}


def run(args: argparse.Namespace) -> int:
    from crossrank.calibration import save_calibration
    from crossrank.errors import InvalidInputError
    from crossrank.evaluation.cache import scorer_settings
    from crossrank.evaluation.fitting import DATA_RULE, drift_reference, fit_labelled

    if not 0.0 < args.holdout < 1.0:
        raise InvalidInputError(f"--holdout must be in (0, 1); received {args.holdout}")
    if args.out is not None and args.domain is not None:
        raise InvalidInputError("--out and --domain both say where to write; give one")
    if args.out is None and args.domain is None and args.model is None and not args.dry_run:
        raise InvalidInputError(
            "say where to write the calibration: --model PATH (beside that model), --domain NAME (the domain's slot), "
            "--out FILE, or --dry-run to write nothing"
        )
    overrides: dict[str, Any] = {"domain": args.domain} if args.domain is not None else {}
    reranker = reranker_from_args(args, **overrides)
    destination = _destination(args, reranker)
    if args.fit_top is not None and args.fit_top < 1:
        raise InvalidInputError(f"--fit-top must be >= 1; received {args.fit_top}")
    if args.beir is not None:
        args.fit_top = _BEIR_TOP if args.fit_top is None else args.fit_top
        data, described = _beir_data(args, reranker)
    elif args.pairs is not None:
        data, described = _pairs_data(args, reranker)
    else:
        data, described = _feedback_data(args, reranker)
    calibration, fit_report = fit_labelled(
        data, kinds=tuple(args.calibrators), holdout=args.holdout, seed=args.seed, max_false_evidence=args.max_false_evidence,
        abstention_rules=tuple(args.abstention_rules), bootstrap_samples=_BOOTSTRAP_SAMPLES, top=args.fit_top,
    )
    counts = data.counts(args.fit_top)
    provenance: dict[str, Any] = {
        **{k: v for k, v in described.items() if k != "fitted_on"},
        "fitted_on": args.fitted_on or described["fitted_on"],
        "queries": counts["queries"],
        "counts": counts,
        "fit_top": args.fit_top,
        "data_rule": DATA_RULE,
        "scorer": scorer_settings(reranker),
        "max_false_evidence": args.max_false_evidence,
        "objective": "hit_rate",
        "fit_report": fit_report,
        "fitted_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "crossrank calibrate " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["calibrate"] else "crossrank calibrate",
    }
    reference = drift_reference(data)
    if reference is not None:
        from crossrank.drift import REFERENCE_KEY

        provenance[REFERENCE_KEY] = reference
    calibration.provenance = provenance
    sys.stdout.write(_summary(counts, data.source, fit_report, calibration, args.fit_top))
    if destination is None:
        sys.stdout.write("dry run: nothing written\n")
        return 0
    if args.dry_run:
        sys.stdout.write(f"dry run: would write {destination}\n")
        return 0
    save_calibration(calibration, destination)
    sys.stdout.write(f"wrote {destination}\n")
    return 0


def _summary(counts: dict[str, int], source: str, report: dict[str, Any], calibration: Any, top: int | None) -> str:
    held = report["held_out"]
    each = f" (each query's {top} best-scored documents)" if top is not None else ""
    lines = [
        f"labelled data: {counts['queries']} queries ({counts['no_answer_queries']} with nothing relevant), {counts['pairs']} pairs"
        f"{each} ({counts['positives']} relevant); labels: {source}",
    ]
    interval = held.get("ece_interval")
    ci = f" (95% bootstrap interval {interval[0]:.4f}-{interval[1]:.4f})" if interval else ""
    lines.append(
        f"held-out ECE {held['ece']:.4f}{ci} on {held['queries']} held-out queries ({held['pairs']} pairs), "
        f"{held['calibrator']} fitted on the other {held['fitted_on_queries']}"
    )
    if "ece_top" in held:
        top_interval = held.get("ece_top_interval")
        ci = f" (95% bootstrap interval {top_interval[0]:.4f}-{top_interval[1]:.4f})" if top_interval else ""
        lines.append(f"held-out ECE over each held-out query's top {held['top']}: {held['ece_top']:.4f}{ci}")
    lines.append(f"calibrator {calibration.calibrator.kind} (chosen by held-out ECE, refitted on all {counts['queries']} queries)")
    if calibration.abstention is None:
        lines.append(report.get("abstention_note", "no abstention rule"))
    else:
        chosen = report["chosen_abstention"]
        scores = report["abstention_comparison"][chosen]
        lines.append(
            f"abstention {chosen}, threshold {calibration.threshold:.4f}: on held-out queries false-evidence rate "
            f"{scores['held_out_false_evidence_rate']:.4f}, hit rate {scores['held_out_hit_rate']:.4f} "
            f"(constraint {report['max_false_evidence']})"
        )
    return "\n".join(lines) + "\n"
