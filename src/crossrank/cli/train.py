"""``crossrank train CONFIG.yaml``: fine-tune, calibrate, export, quantize and gate a cross-encoder."""

from __future__ import annotations

import argparse
import json
import sys
import time


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a cross-encoder from a YAML config (pip install 'crossrank[train]')",
        description=(
            "Train from a YAML config, then automatically calibrate on the dev split, export ONNX, "
            "quantize to int8 and run the regression gate (the run fails when int8 dev nDCG@10 drops "
            "more than gate_tolerance below fp32). An interrupted run resumes from its last checkpoint."
        ),
    )
    parser.add_argument("config", help="training config (YAML or JSON)")
    parser.add_argument("--domain", default=None, help="register the finished model under this domain")
    parser.add_argument("--output-dir", default=None, help="override the config's output_dir")
    parser.add_argument("--device", default=None, help="override the config's device: cpu, cuda or cuda:N")
    parser.add_argument("--restart", action="store_true", help="ignore existing checkpoints and start over")
    evaluation = parser.add_argument_group("test-set evaluation (benchmark)")
    evaluation.add_argument("--evaluate", metavar="BEIR_DIR", default=None, help="after training, rerank this BEIR set's BM25 candidates with the base and the trained model")
    evaluation.add_argument("--eval-split", default="test")
    evaluation.add_argument("--eval-queries", type=int, default=None, help="first N judged queries (default: all)")
    evaluation.add_argument("--eval-depth", type=int, default=100, help="BM25 candidates per query (default: 100)")
    evaluation.add_argument("--baseline", default=None, help="model the gain is measured against (default: the config's base_model)")
    evaluation.add_argument("--cache-dir", default=None, help="score cache folder (default: <output_dir>/score-cache)")
    evaluation.add_argument(
        "--benchmark", metavar="SECTION", default=None,
        help="write the figures to this BENCHMARKS.md section (without --evaluate: the training figures only: dev nDCG@10, gate, wall time, peak memory)",
    )
    evaluation.add_argument("--note", default=None,
                            help="a paragraph appended to the BENCHMARKS.md section (e.g. how the run was resumed or why a target is missed)")
    parser.add_argument("--benchmarks-file", default="BENCHMARKS.md", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from crossrank.training.config import load_config
    from crossrank.training.trainer import train

    started = time.perf_counter()
    config = load_config(args.config, domain=args.domain, output_dir=args.output_dir, device=args.device)
    result = train(config, resume=not args.restart)
    wall = time.perf_counter() - started
    payload = {"model": str(result.model_dir), **result.metrics, "wall_seconds_including_resume_and_export": wall}
    if args.evaluate:
        payload["test"] = _evaluate(args, config, result, wall)
    elif args.benchmark:
        _write_training_section(args.benchmark, args.config, config, result, wall, args.benchmarks_file, args.note)
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return 0


def _training_lines(result: object, train_wall: float, peak_mib: float, accelerator: str | None = None) -> str:
    metrics = result.metrics  # type: ignore[attr-defined]
    return (
        f"- Dev nDCG@10 before -> best (fp32 torch): {metrics['dev_ndcg_before']:.4f} -> {metrics['dev_ndcg_after']:.4f}\n"
        f"- Dev gate (int8 vs fp32 ONNX): {json.dumps(metrics.get('gate'))}\n"
        f"- Wall time of the command up to a finished model (data, mining, training, evaluations, calibration, "
        f"export, gate): {train_wall:.0f} s, of which data loading, negative mining, training and dev evaluations "
        f"{metrics['train_seconds']:.0f} s; peak resident memory of the process: {peak_mib:.0f} MiB.\n"
        + (f"- Accelerator: {accelerator}.\n" if accelerator else "")
        + _invocation_lines(metrics.get("invocations", []))
    )


def _invocation_lines(invocations: list[dict]) -> str:
    """List every call that worked on this run folder: a resumed command's own time leaves out the earlier calls."""
    if len(invocations) < 2:
        return ""
    lines = ["- This run folder was worked on by several commands (the figures above are the last one's):\n"]
    for number, call in enumerate(invocations, start=1):
        steps = (
            f"steps {call['steps_before']} -> {call['steps_after']}" if call["steps_after"] > call["steps_before"]
            else f"no training steps (run already at step {call['steps_after']})"
        )
        lines.append(
            f"  {number}. {call['started']}: {steps}; data loading, negative mining, training and dev evaluations "
            f"{call['train_seconds']:.0f} s; {call['outcome']}.\n"
        )
    total = sum(call["train_seconds"] for call in invocations)
    lines.append(f"  Data loading, negative mining, training and dev evaluations over all commands: {total:.0f} s.\n")
    return "".join(lines)


def _run_description(config: object, metrics: dict) -> str:
    from crossrank.training.export import held_out_no_answer

    return (
        f"{metrics['steps']} training steps (best dev step {metrics['best_step']}) with `{config.loss}` and "  # type: ignore[attr-defined]
        f"`{config.negatives.strategy}` negatives, batch {config.batch_size} groups, max_length {config.max_length}, "  # type: ignore[attr-defined]
        f"{config.freeze_layers} lowest encoder layers frozen, device {config.device}, on {metrics['train_queries']} "  # type: ignore[attr-defined]
        f"train queries (dev: {metrics['dev_queries']} held-out queries{held_out_no_answer(metrics)}, query-grouped)"
    )


def _write_training_section(
    section: str, config_path: str, config: object, result: object, train_wall: float, benchmarks_file: str, note: str | None
) -> None:
    from pathlib import Path

    from crossrank.benchmarks import write_section
    from crossrank.training.benchmark import accelerator_peak, peak_memory_mib

    metrics = result.metrics  # type: ignore[attr-defined]
    body = (
        f"## Training run: {Path(config_path).name}\n\n"
        f"Start `{config.base_model}`; {_run_description(config, metrics)}.\n\n"  # type: ignore[attr-defined]
        f"- Training config:\n\n```json\n{json.dumps(config.to_dict(), indent=2, sort_keys=True)}\n```\n"  # type: ignore[attr-defined]
        + _training_lines(result, train_wall, peak_memory_mib(), accelerator_peak(config.device))  # type: ignore[attr-defined]
        + (f"\n{note}\n" if note else "")
    )
    write_section(section, body, path=benchmarks_file)


def _evaluate(args: argparse.Namespace, config: object, result: object, train_wall: float) -> dict:
    from pathlib import Path

    from crossrank.training.benchmark import accelerator_peak, evaluate_models, paired_bootstrap, peak_memory_mib

    train_peak, accelerator = peak_memory_mib(), accelerator_peak(config.device)  # type: ignore[attr-defined]
    baseline = args.baseline or config.base_model  # type: ignore[attr-defined]
    threads = config.num_threads  # type: ignore[attr-defined]
    runtime = {"backend_options": {"num_threads": threads}} if threads else {}
    models = {
        "base": (baseline, runtime),
        "trained-int8": (str(result.model_dir), {"backend": "onnx", **runtime}),  # type: ignore[attr-defined]
        "trained-fp32": (str(result.run_dir / "export" / "fp32"), {"backend": "onnx", **runtime}),  # type: ignore[attr-defined]
    }
    evaluation = evaluate_models(
        models, args.evaluate, split=args.eval_split, queries=args.eval_queries, depth=args.eval_depth,
        max_length=config.max_length,  # type: ignore[attr-defined]
        bm25_stemmer=config.bm25_stemmer,  # type: ignore[attr-defined]
        cache_dir=args.cache_dir or Path(config.output_dir) / "score-cache",  # type: ignore[attr-defined]
    )
    base, int8, fp32 = (evaluation.mean(k) for k in ("base", "trained-int8", "trained-fp32"))
    p_value = paired_bootstrap(evaluation.per_query["base"], evaluation.per_query["trained-int8"])
    figures = {
        "queries": len(evaluation.queries), "depth": evaluation.depth, "base_ndcg@10": base,
        "trained_int8_ndcg@10": int8, "trained_fp32_ndcg@10": fp32, "gain": int8 - base, "bootstrap_p": p_value,
        "train_wall_seconds": train_wall, "peak_memory_mib": train_peak,
    }
    if args.benchmark:
        from crossrank.benchmarks import write_section

        metrics = result.metrics  # type: ignore[attr-defined]
        untrained = metrics["best_step"] == 0
        published = "published model (start weights, re-exported)" if untrained else "fine-tuned"
        note = (
            "\n**No training step improved dev nDCG@10, so the published model is the start checkpoint** "
            "(the float import, re-exported to ONNX and re-quantized). The difference to the base row "
            "therefore measures the re-export and re-quantization at this max_length, not fine-tuning.\n"
            if untrained else ""
        )
        body = (
            f"## Fine-tuning: {Path(args.evaluate).name}\n\n"
            f"Start `{config.base_model}`, compared with `{baseline}`; {_run_description(config, metrics)}. "  # type: ignore[attr-defined]
            f"Test: {len(evaluation.queries)} "
            f"judged `{args.eval_split}` queries, BM25 top-{evaluation.depth} reranked by each model.\n{note}\n"
            "| model | test nDCG@10 |\n|---|---|\n"
            f"| base `{baseline}` | {base:.4f} |\n| {published}, int8 ONNX | {int8:.4f} |\n"
            f"| {published}, fp32 ONNX | {fp32:.4f} |\n\n"
            f"- Difference (int8 vs base): {int8 - base:+.4f}; paired bootstrap over queries (10,000 resamples), "
            f"one-sided p = {p_value:.4f}\n"
            f"- int8 vs fp32 on test: {int8 - fp32:+.4f}\n"
            + _training_lines(result, train_wall, train_peak, accelerator)
            + (f"\n{args.note}\n" if args.note else "")
        )
        write_section(args.benchmark, body, path=args.benchmarks_file)
    return figures
