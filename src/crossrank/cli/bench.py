"""``crossrank bench``: benchmarks that write their figures into ``BENCHMARKS.md``.

Each benchmark family lives in its own module listed in :data:`BENCH_MODULES`; the module
exposes ``register(subparsers)`` and adds its own ``crossrank bench <name>`` subcommands, with
handlers that return an exit code. Adding a family (say ``crossrank bench speed``) means
writing its module and appending its name to the tuple; nothing here changes.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["BENCH_MODULES", "register"]

BENCH_MODULES: tuple[str, ...] = (
    "crossrank.benchmarks.reliability",
    "crossrank.benchmarks.speed",
    "crossrank.benchmarks.revisions",
    "crossrank.benchmarks.serving",
    "crossrank.benchmarks.feedback",
    "crossrank.benchmarks.documents",
    "crossrank.benchmarks.families",
    "crossrank.benchmarks.calibration",
    "crossrank.benchmarks.frontier",
    "crossrank.benchmarks.early_exit",
)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark and record it in BENCHMARKS.md",
        description="Run a benchmark; each one rewrites only its own section of BENCHMARKS.md.",
    )
    benchmarks = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    for name in BENCH_MODULES:
        importlib.import_module(name).register(benchmarks)

    def show_help(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(handler=show_help)
