"""``crossrank distill CONFIG.yaml``: train a faster student on a teacher's scores (MarginMSE)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

# What a distilled student is meant to reach: the share of the teacher's test nDCG@10 it keeps and
# how many times the teacher's pairs per second it scores (int8 both).
QUALITY_TARGET = 0.97
SPEED_TARGET = 1.8


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "distill",
        help="distill a teacher into a smaller student with MarginMSE (pip install 'crossrank[train]')",
        description=(
            "The config is a training config with 'teacher' set (base_model: the teacher's float "
            "checkpoint, used by the even-layers student). The loss defaults to margin_mse."
        ),
    )
    parser.add_argument("config", help="training config (YAML or JSON) with 'teacher'")
    parser.add_argument("--student", choices=("even-layers", "minilm"), default="even-layers",
                        help="the teacher's even layers, or all-MiniLM-L6-v2 with a new head")
    parser.add_argument("--output-dir", default=None, help="override the config's output_dir")
    parser.add_argument("--domain", default=None, help="register the student under this domain")
    parser.add_argument("--profile", default=None,
                        help="register the student as this speed profile: Reranker(profile=NAME), --profile NAME")
    parser.add_argument("--device", default=None, help="override the config's device: cpu, cuda or cuda:N")
    parser.add_argument("--restart", action="store_true", help="ignore existing checkpoints and start over")
    evaluation = parser.add_argument_group("teacher vs student (benchmark)")
    evaluation.add_argument("--evaluate", metavar="BEIR_DIR", default=None,
                            help="after training, rerank this BEIR set's BM25 candidates with the teacher and the student "
                                 "and time both on the same pairs")
    evaluation.add_argument("--eval-split", default="test")
    evaluation.add_argument("--eval-queries", type=int, default=None, help="first N judged queries (default: all)")
    evaluation.add_argument("--eval-depth", type=int, default=100, help="BM25 candidates per query (default: 100)")
    evaluation.add_argument("--speed-queries", type=int, default=20, help="queries of the timed workload (default: 20)")
    evaluation.add_argument("--speed-repeats", type=int, default=5, help="timed passes per model; the median is reported (default: 5)")
    evaluation.add_argument("--no-fp32", action="store_true",
                            help="leave out the student's fp32 graph on test (the gate already compares int8 and fp32 on dev)")
    evaluation.add_argument("--cache-dir", default=None, help="score cache folder (default: <output_dir>/score-cache)")
    evaluation.add_argument("--benchmark", metavar="SECTION", default=None,
                            help="write the figures to this BENCHMARKS.md section (needs --evaluate)")
    evaluation.add_argument("--note", default=None, help="a paragraph appended to the BENCHMARKS.md section")
    parser.add_argument("--benchmarks-file", default="BENCHMARKS.md", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from crossrank.training.config import load_config
    from crossrank.training.distill import distill

    from crossrank.errors import ConfigurationError

    if args.benchmark and not args.evaluate:
        raise ConfigurationError("--benchmark writes the teacher vs student figures: it needs --evaluate BEIR_DIR")
    for name in ("eval_queries", "eval_depth", "speed_queries", "speed_repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigurationError(f"--{name.replace('_', '-')} must be >= 1; received {value}")
    started = time.perf_counter()
    config = load_config(args.config, domain=args.domain, profile=args.profile, output_dir=args.output_dir, device=args.device, loss_default="margin_mse")
    result = distill(config, student=args.student, resume=not args.restart)
    wall = time.perf_counter() - started
    payload: dict[str, Any] = {"model": str(result.model_dir), **result.metrics, "wall_seconds_including_resume_and_export": wall}
    if args.evaluate:
        payload["teacher_vs_student"] = compare_teacher_and_student(args, config, result, wall)
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return 0


def speed_pairs(teacher: str, student_folder: Path) -> list[tuple[str, str, str]]:
    """``(mode, teacher configuration, student configuration)`` timed side by side.

    An int8 graph runs two ways: per-token activation scales in token-budget batches, or
    per-tensor scales with each pair alone and one call per core (faster on CPU, and how the
    embedded default runs by default). Each model is timed both ways, so every ratio compares the
    models in the same mode.
    """
    from crossrank import DEFAULT_MODEL, Reranker
    from crossrank.config import RerankerConfig

    if teacher == DEFAULT_MODEL:
        per_token, per_tensor = "crossrank-pertoken", "crossrank-truncate"
    else:
        teacher_reranker = Reranker.from_config(RerankerConfig(model=teacher))
        teacher_folder = teacher_reranker.model_path
        teacher_reranker.close()
        per_token, per_tensor = f"model={teacher_folder}", f"model-pertensor={teacher_folder}"
    return [
        ("per-token, batched", per_token, f"model={student_folder}"),
        ("per-tensor, pair by pair", per_tensor, f"model-pertensor={student_folder}"),
    ]


def compare_teacher_and_student(args: argparse.Namespace, config: Any, result: Any, train_wall: float) -> dict[str, Any]:
    """Test nDCG@10 of teacher and student on the same candidates, and their pairs/s on one workload.

    Everything runs at the config's ``max_length`` with truncation, the setting the student was
    trained with, so neither model gets sentence selection the other lacks.
    """
    from crossrank.benchmarks import median_min_max
    from crossrank.benchmarks.speed import describe_configuration, run_speed_benchmark
    from crossrank.training.benchmark import accelerator_peak, evaluate_models, paired_bootstrap, peak_memory_mib

    train_peak, accelerator = peak_memory_mib(), accelerator_peak(config.device)
    threads = config.num_threads
    runtime = {"backend_options": {"num_threads": threads}} if threads else {}
    models = {
        "teacher": (config.teacher, runtime),
        "student-int8": (str(result.model_dir), {"backend": "onnx", **runtime}),
        "student-int8-pertensor": (
            str(result.model_dir),
            {"backend": "onnx", "backend_options": {**runtime.get("backend_options", {}), "activation_quantization": "per-tensor"}},
        ),
    }
    if not args.no_fp32:
        models["student-fp32"] = (str(result.run_dir / "export" / "fp32"), {"backend": "onnx", **runtime})
    evaluation = evaluate_models(
        models, args.evaluate, split=args.eval_split, queries=args.eval_queries, depth=args.eval_depth,
        max_length=config.max_length, bm25_stemmer=config.bm25_stemmer, long_documents="truncate",
        cache_dir=args.cache_dir or Path(config.output_dir) / "score-cache",
    )
    teacher, student = evaluation.mean("teacher"), evaluation.mean("student-int8")
    student_per_tensor = evaluation.mean("student-int8-pertensor")
    student_fp32 = None if args.no_fp32 else evaluation.mean("student-fp32")
    modes = speed_pairs(config.teacher, result.model_dir)
    specs = [spec for _, teacher_spec, student_spec in modes for spec in (teacher_spec, student_spec)]
    speeds, _, workload = run_speed_benchmark(
        data_dir=Path(args.evaluate), configurations=specs, split=args.eval_split, queries=args.speed_queries, depth=args.eval_depth,
        max_length=config.max_length, repeats=args.speed_repeats, latency_runs=0, cold_start=False,
    )
    pairs_per_second = {r.name: median_min_max(r.throughput)[0] for r in speeds}
    speed_rows = [(describe_configuration(r.name, config.max_length), median_min_max(r.throughput)) for r in speeds]
    speedups = {mode: pairs_per_second[student_spec] / pairs_per_second[teacher_spec] for mode, teacher_spec, student_spec in modes}
    figures = {
        "queries": len(evaluation.queries), "depth": evaluation.depth, "max_length": config.max_length,
        "teacher_ndcg@10": teacher, "student_int8_ndcg@10": student, "student_int8_pertensor_ndcg@10": student_per_tensor,
        "student_fp32_ndcg@10": student_fp32,
        "retention": student / teacher if teacher else float("nan"),
        "retention_pertensor": student_per_tensor / teacher if teacher else float("nan"),
        "student_worse_bootstrap_p": paired_bootstrap(evaluation.per_query["student-int8"], evaluation.per_query["teacher"]),
        "pairs_per_second": pairs_per_second, "speedup": speedups,
        "best_speedup": max(pairs_per_second[s] for _, _, s in modes) / max(pairs_per_second[t] for _, t, _ in modes),
        "timed_pairs": workload.pairs,
    }
    if args.benchmark:
        from crossrank.benchmarks import write_section
        from crossrank.cli.train import _run_description, _training_lines

        def verdict(met: bool) -> str:
            return "met" if met else "missed"

        speed_table = "".join(f"| {label} | {m:.1f} ({low:.1f}–{high:.1f}) |\n" for label, (m, low, high) in speed_rows)
        speedup_lines = "".join(
            f"- {mode}: the student scores {ratio:.2f}x the teacher's pairs per second "
            f"(target >= {SPEED_TARGET}x: {verdict(ratio >= SPEED_TARGET)})\n"
            for mode, ratio in speedups.items()
        ) + (
            f"- Each model at its faster mode: {figures['best_speedup']:.2f}x "
            f"(target >= {SPEED_TARGET}x: {verdict(figures['best_speedup'] >= SPEED_TARGET)})\n"
        )
        body = (
            f"## Distillation: {Path(args.config).name}\n\n"
            f"Teacher `{config.teacher}`; student `{args.student}` from `{config.base_model}`; "
            f"{_run_description(config, result.metrics)}. Test: {figures['queries']} judged `{args.eval_split}` queries of "
            f"`{Path(args.evaluate).name}`, BM25 top-{evaluation.depth} ({config.bm25_stemmer} stemming) reranked by each model "
            f"at max_length {config.max_length}, documents truncated (as in training and in the timed runs). Speed: the first {args.speed_queries} judged queries of the split x BM25 top-{args.eval_depth} "
            f"(unstemmed, as in the speed sections) = {workload.pairs} pairs, one call per query, all configurations in one "
            f"process, interleaved; median of {args.speed_repeats} passes (min–max).\n\n"
            "| model | test nDCG@10 |\n|---|---|\n"
            f"| teacher (`{config.teacher}`, as `Reranker` runs it by default) | {teacher:.4f} |\n"
            f"| student, int8 ONNX, per-token (the default for a trained model) | {student:.4f} |\n"
            f"| student, int8 ONNX, per-tensor (`activation_quantization=\"per-tensor\"`) | {student_per_tensor:.4f} |\n"
            + (f"| student, fp32 ONNX | {student_fp32:.4f} |\n" if student_fp32 is not None else "")
            + "\n| speed configuration | pairs/s |\n|---|---|\n" + speed_table + "\n"
            + f"- Student keeps {figures['retention']:.1%} of the teacher's nDCG@10 (target >= {QUALITY_TARGET:.0%}: "
            f"{verdict(figures['retention'] >= QUALITY_TARGET)}); paired bootstrap over queries (10,000 resamples), one-sided "
            f"p that the teacher's lead is chance = {figures['student_worse_bootstrap_p']:.4f}; per-tensor: "
            f"{figures['retention_pertensor']:.1%} ({verdict(figures['retention_pertensor'] >= QUALITY_TARGET)})\n"
            + speedup_lines
            + (f"- Student int8 vs fp32 on test: {student - student_fp32:+.4f}\n" if student_fp32 is not None else "")
            + _training_lines(result, train_wall, train_peak, accelerator)
            + f"- Training config:\n\n```json\n{json.dumps(config.to_dict(), indent=2, sort_keys=True)}\n```\n"
            + (f"\n{args.note}\n" if args.note else "")
        )
        write_section(args.benchmark, body, path=args.benchmarks_file)
    return figures
