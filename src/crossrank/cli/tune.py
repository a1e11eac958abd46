"""``crossrank tune``: fit calibration and abstention on a development split, searching settings with Optuna.

Every trial works on cached scores: a setting whose pairs are not cached is scored once (or
skipped with ``--cached-only``). Within a trial the calibrator is fitted on part of the queries,
and the abstention rule's cut is chosen analytically under the false-evidence constraint; Optuna
searches the discrete choices (candidate depth, max_length, long-document handling, abstention
rule) for the best held-out objective; the calibrator kind is chosen by held-out ECE.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crossrank.cli.common import add_model_options, parse_positive_ints, parse_unit_interval, reranker_from_args
from crossrank.cli.eval import add_dataset_options

__all__ = ["register"]


def _weight_list(text: str) -> list[float]:
    values = [parse_unit_interval(v.strip(), "comma-separated numbers in [0, 1]") for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers in [0, 1]; received {text!r}")
    return values


def _name_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="fit calibration, threshold and abstention on a dev split (Optuna over cached scores)",
        description="Fit a calibrator, a probability threshold and a query-level abstention rule on a "
        "development split, maximising an objective subject to a false-evidence-rate constraint; "
        "optionally search candidate depth, max_length and long-document handling with Optuna.",
    )
    add_dataset_options(parser, split="train")
    add_model_options(parser)
    parser.add_argument("--include-judged", action="store_true",
                        help="add the split's judged-relevant documents missing from the candidates")
    parser.add_argument("--depths", type=parse_positive_ints, default=None, help="candidate depths to search (default: --depth)")
    parser.add_argument("--max-lengths", type=parse_positive_ints, default=None, help="max_length values to search (default: --max-length)")
    parser.add_argument("--long-documents-options", type=_name_list, default=None,
                        help="long-document modes to search, e.g. truncate,window,select (default: --long-documents)")
    parser.add_argument("--calibrators", type=_name_list, default=["platt", "isotonic"],
                        help="calibrator kinds to compare by held-out ECE (default platt,isotonic; temperature also available)")
    parser.add_argument("--abstention-rules", type=_name_list, default=["max-score", "logistic"],
                        help="abstention rules to compare (default max-score,logistic)")
    parser.add_argument("--first-stage-weights", type=_weight_list, default=None, metavar="LIST",
                        help="first-stage weights to compare for the final order, e.g. 0,0.1,0.2,0.3,0.4,0.5 "
                        "(chosen by --fusion-metric on the tune queries; default: not searched)")
    parser.add_argument("--fusion-metric", default="ndcg@10", help="ranking metric that chooses the first-stage weight (default ndcg@10)")
    parser.add_argument("--objective", default="hit_rate", help="hit_rate (default) or a ranking metric such as ndcg@10")
    parser.add_argument("--max-false-evidence", type=float, default=0.3, help="constraint ε (default 0.3)")
    parser.add_argument("--holdout", type=float, default=0.3, help="share of queries held out for model selection (default 0.3)")
    parser.add_argument("--trials", type=int, default=30, help="Optuna trials (default 30)")
    parser.add_argument("--cached-only", action="store_true", help="score nothing; use settings whose scores are cached")
    parser.add_argument("--fitted-on", default=None, help="free-text description of the fitting data for the provenance")
    parser.add_argument("--write-calibration", type=Path, default=None, help="save the fitted calibration JSON here")
    parser.add_argument("--out", type=Path, required=True, help="where to save the best configuration (JSON)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from crossrank.calibration import save_calibration
    from crossrank.errors import InvalidInputError, missing_dependency
    from crossrank.evaluation.datasets import load_dataset
    from crossrank.evaluation.fitting import drift_reference
    from crossrank.evaluation.runner import (
        EvalSetup,
        fit_calibration,
        labelled_queries,
        prefer_simpler_rule,
        prepare,
        select_first_stage_weight,
    )

    if not 0.0 <= args.max_false_evidence <= 1.0:
        raise InvalidInputError(f"--max-false-evidence must be in [0, 1]; received {args.max_false_evidence}")
    if not 0.0 < args.holdout < 1.0:
        raise InvalidInputError(f"--holdout must be in (0, 1); received {args.holdout}")
    try:
        import optuna
    except ImportError:
        raise missing_dependency("optuna", "eval", "crossrank tune") from None
    dataset = load_dataset(args.dataset)
    depths = args.depths or [args.depth]
    lengths = args.max_lengths or [args.max_length]
    modes = args.long_documents_options or [args.long_documents]
    # None keeps the reranker's configured default.
    bad_modes = [m for m in modes if m not in (None, "truncate", "window", "select")]
    if bad_modes:
        raise InvalidInputError(f"--long-documents-options must be truncate, window or select; received {bad_modes}")
    prepared: dict[tuple[int, int | None, str], Any] = {}
    for length in lengths:
        for mode in modes:
            args.max_length, args.long_documents = length, mode
            reranker = reranker_from_args(args)
            for depth in depths:
                setup = EvalSetup(split=args.split, candidates=args.candidates, depth=depth, rrf_k0=args.rrf_k0,
                                  bm25_stemmer=args.bm25_stemmer, query_ids=args.queries, sample=args.sample, seed=args.seed, include_judged=args.include_judged,
                                  rerank_depth=args.rerank_depth)
                scored = prepare(dataset, setup, reranker, cache_dir=args.cache_dir, score=not args.cached_only,
                                 progress=sys.stderr.isatty())
                if scored.complete:
                    prepared[(depth, length, mode)] = scored
    if not prepared:
        raise InvalidInputError("no setting has all its scores cached; run without --cached-only")
    keys = sorted(prepared, key=str)
    results: dict[tuple[Any, ...], tuple[float, Any, dict[str, Any]]] = {}

    def objective(trial: optuna.Trial) -> float:
        index = trial.suggest_categorical("setting", list(range(len(keys))))
        rule = trial.suggest_categorical("abstention", list(args.abstention_rules))
        key = (index, rule)
        if key not in results:
            # The calibrator kind is chosen inside the fit, by held-out ECE.
            calibration, fit_report = fit_calibration(
                prepared[keys[index]], kinds=tuple(args.calibrators), abstention_rules=(rule,), holdout=args.holdout,
                seed=args.seed, max_false_evidence=args.max_false_evidence, objective=args.objective,
            )
            held = (fit_report.get("abstention_comparison") or {}).get(rule)
            if held is None:
                # No rule could be fitted (no no-answer queries): settings compete on calibration alone.
                chosen = fit_report["chosen_calibrator"]
                value = -fit_report["calibrator_comparison"][chosen]["held_out_ece"]
            elif held["held_out_false_evidence_rate"] <= args.max_false_evidence:
                value = held["held_out_hit_rate"]
            else:
                value = -held["held_out_false_evidence_rate"]
            results[key] = (value, calibration, fit_report)
        return results[key][0]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed))
    combinations = [(i, rule) for i in range(len(keys)) for rule in args.abstention_rules]
    if len(combinations) <= args.trials:
        # A small space is enumerated outright; Optuna's sampler takes over for larger ones.
        for index, rule in combinations:
            study.enqueue_trial({"setting": index, "abstention": rule})
    study.optimize(objective, n_trials=max(1, args.trials))
    # Ties go to the first setting; within a setting a richer rule must beat the simplest by a standard error.
    best_index = max(results, key=lambda k: (results[k][0], -k[0]))[0]
    held = {k[1]: results[k][2]["abstention_comparison"][k[1]] for k in results
            if k[0] == best_index and k[1] in (results[k][2].get("abstention_comparison") or {})}
    if held:
        best_key = (best_index, prefer_simpler_rule(held, list(args.abstention_rules), args.max_false_evidence))
    else:
        best_key = max((k for k in results if k[0] == best_index), key=lambda k: results[k][0])
    value, calibration, fit_report = results[best_key]
    depth, length, mode = keys[best_key[0]]
    scored = prepared[keys[best_key[0]]]
    calibration.provenance = {
        "fitted_on": args.fitted_on or _describe(scored),
        "dataset": dataset.name,
        "split": args.split,
        "setup": scored.setup.to_dict(),
        "queries": len(scored.query_ids),
        "scorer": scored.settings,
        "max_false_evidence": args.max_false_evidence,
        "objective": args.objective,
        "fit_report": fit_report,
        "fitted_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "crossrank tune " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["tune"] else "crossrank tune",
    }
    reference = drift_reference(labelled_queries(scored))
    if reference is not None:
        from crossrank.drift import REFERENCE_KEY

        calibration.provenance[REFERENCE_KEY] = reference
    has_rule = calibration.abstention is not None
    fusion: dict[str, Any] | None = None
    if args.first_stage_weights:
        weight, values = select_first_stage_weight(scored, args.first_stage_weights, metric=args.fusion_metric)
        fusion = {"first_stage_weight": weight, "metric": args.fusion_metric.lower(), "queries": len(scored.query_ids),
                  "values": {f"{w:g}": v for w, v in values.items()}}
    best = {
        "setting": {"depth": depth, "max_length": scored.settings["max_length"], "long_documents": scored.settings["long_documents"]},
        "calibrator": calibration.calibrator.kind,
        "abstention_rule": best_key[1] if has_rule else None,
        "held_out_value": value if has_rule else None,
        "held_out_ece": fit_report["calibrator_comparison"][fit_report["chosen_calibrator"]]["held_out_ece"],
        "objective": args.objective,
        "max_false_evidence": args.max_false_evidence,
        "calibration": calibration.to_dict(),
        "trials": [
            {"setting": dict(zip(("depth", "max_length", "long_documents"), keys[k[0]])),
             "calibrator": v[1].calibrator.kind, "abstention_rule": k[1] if v[1].abstention is not None else None,
             "value": v[0] if v[1].abstention is not None else None,
             "held_out_ece": v[2]["calibrator_comparison"][v[2]["chosen_calibrator"]]["held_out_ece"]}
            for k, v in sorted(results.items(), key=lambda item: -item[1][0])
        ],
    }
    if not has_rule:
        best["abstention_note"] = fit_report.get("abstention_note")
    if fusion is not None:
        best["fusion"] = fusion
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(best, indent=2, sort_keys=True, default=float) + "\n", encoding="utf-8")
    setting = f"depth {depth}, max_length {scored.settings['max_length']}, {scored.settings['long_documents']}"
    if has_rule:
        sys.stdout.write(
            f"best: {setting}, calibrator {calibration.calibrator.kind} (by held-out ECE), "
            f"abstention {best_key[1]}; held-out {args.objective} {value:.4f} "
            f"(false-evidence constraint {args.max_false_evidence})\n"
            f"threshold {calibration.threshold}, abstention {json.dumps(calibration.abstention)}\nwrote {args.out}\n"
        )
    else:
        answerable = dataset.answerable(args.split)
        hint = (
            f" ({dataset.name} split '{args.split}' has no qrels/{args.split}-evidence.tsv or query_labels.{args.split}.tsv "
            "to mark them)" if answerable is None else ""
        )
        sys.stdout.write(
            f"best: {setting}, calibrator {calibration.calibrator.kind}, chosen by held-out ECE "
            f"{best['held_out_ece']:.4f}\n{fit_report.get('abstention_note', 'no abstention rule fitted')}{hint}; "
            f"the calibration has no threshold and no abstention rule\nwrote {args.out}\n"
        )
    if fusion is not None:
        table = ", ".join(f"{w} {v:.4f}" for w, v in fusion["values"].items())
        sys.stdout.write(
            f"first-stage weight {fusion['first_stage_weight']:g} ({fusion['metric']} on {fusion['queries']} queries: {table})\n"
        )
    if args.write_calibration is not None:
        save_calibration(calibration, args.write_calibration)
        sys.stdout.write(f"wrote {args.write_calibration}\n")
    return 0


def _describe(scored: Any) -> str:
    setup = scored.setup
    if setup.sample:
        sample = f"a seeded sample (seed {setup.seed}) of {len(scored.query_ids)} queries"
    elif setup.query_ids is not None:
        sample = f"the {len(scored.query_ids)} listed queries"
    else:
        sample = f"all {len(scored.query_ids)} queries"
    judged = " plus the split's judged-relevant documents" if setup.include_judged else ""
    return (
        f"{scored.dataset.name} split '{setup.split}', {sample}; {setup.candidates} top-{setup.depth} candidates{judged}"
    )
