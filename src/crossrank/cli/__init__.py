"""The ``crossrank`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``; the handler it sets
returns an exit code. Bad input exits with code 2 and a one-line message on stderr; any other
failure exits with code 1 and one line that says to run with ``-v`` for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
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
    "crossrank.cli.export",
    "crossrank.cli.train",
    "crossrank.cli.distill",
    "crossrank.cli.quantization_scan",
    "crossrank.cli.domains",
    "crossrank.cli.profiles",
    "crossrank.cli.eval",
    "crossrank.cli.tune",
    "crossrank.cli.calibrate",
)


def build_parser() -> argparse.ArgumentParser:
    from crossrank import __version__

    parser = argparse.ArgumentParser(prog="crossrank", description="Calibrated cross-encoder reranking.")
    parser.add_argument("--version", action="version", version=f"crossrank {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="log more (-v info, -vv debug) and print the traceback of an error",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code.

    0: success. 2: a :class:`~crossrank.errors.CrossRankError` (bad input, configuration or
    model) or an operating-system error about a file, reported as one line. 1: anything else,
    reported as one line with a hint; ``-v`` adds the traceback. 130: interrupted.
    """
    verbose = 0
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        verbose = args.verbose
        if verbose:
            # Only the command line configures logging; the library never does.
            logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO, stream=sys.stderr)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return 2
        return int(handler(args) or 0)
    except (CrossRankError, OSError) as exc:
        if verbose:
            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"crossrank: error: {_one_line(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("crossrank: interrupted\n")
        return 130
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - native panics derive from BaseException only
        if verbose:
            traceback.print_exc(file=sys.stderr)
        hint = "" if verbose else "; run with -v for the traceback"
        sys.stderr.write(f"crossrank: unexpected error: {type(exc).__name__}: {_one_line(exc)}{hint}\n")
        return 1


def _one_line(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    return message or type(exc).__name__


def run() -> None:
    sys.exit(main())
