"""The ``crossrank`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``; the handler it sets
returns an exit code. Bad input exits with code 2 and a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from crossrank.errors import CrossRankError

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

COMMAND_MODULES = (
    "crossrank.cli.rerank",
    "crossrank.cli.models",
    "crossrank.cli.demo",
    "crossrank.cli.config",
    "crossrank.cli.feedback",
    "crossrank.cli.bench",
    "crossrank.cli.import_onnx",
    "crossrank.cli.train",
    "crossrank.cli.distill",
    "crossrank.cli.quantization_scan",
    "crossrank.cli.domains",
    "crossrank.cli.eval",
    "crossrank.cli.tune",
)


def build_parser() -> argparse.ArgumentParser:
    from crossrank import __version__

    parser = argparse.ArgumentParser(prog="crossrank", description="Calibrated cross-encoder reranking.")
    parser.add_argument("--version", action="version", version=f"crossrank {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        # Only the command line configures logging; the library never does.
        logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO, stream=sys.stderr)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except (CrossRankError, OSError) as exc:
        message = " ".join(str(exc).split())
        sys.stderr.write(f"crossrank: error: {message}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("crossrank: interrupted\n")
        return 130


def run() -> None:
    sys.exit(main())
