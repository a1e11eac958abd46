"""Reranker options on the command line, derived from :class:`crossrank.config.RerankerConfig`.

Every option declared with ``cli=True`` becomes a ``--flag`` (underscores become hyphens) whose
help text is the option's own. A flag left out is not given: the environment
(``CROSSRANK_<OPTION>``), then the configuration file, then the default apply, exactly as for
``Reranker(**options)`` in Python.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any

from crossrank.config import option_specs

__all__ = ["add_reranker_options", "given_options", "reranker_from_args"]

_DECISION = ("threshold", "top_k", "first_stage_weight")


def _parser_for(name: str) -> Any:
    spec = option_specs()[name]
    if name in ("threshold", "first_stage_weight"):
        from crossrank.cli.common import parse_threshold, parse_unit_interval

        return parse_threshold if name == "threshold" else parse_unit_interval
    if name == "top_k":
        return int  # its range is checked where every top-k is, with the engine's message

    def parse(text: str) -> Any:
        from crossrank.errors import CrossRankError

        try:
            # Parsed here; checked with every other option when the reranker is built (exit 2, one line).
            return spec.parse(name, text)
        except CrossRankError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse names the type in its message
    return parse


def add_reranker_options(
    parser: argparse.ArgumentParser, *, decision: bool = False, exclude: Iterable[str] = ()
) -> None:
    """Add a ``--flag`` for each command-line option (the decision options only with ``decision``)."""
    short = {"top_k": ("-k",), "threshold": ("-t",)}
    skipped = set(exclude)
    for name, spec in option_specs().items():
        if not spec.cli or name in skipped or (name in _DECISION and not decision):
            continue
        flag = "--" + name.replace("_", "-")
        default = "" if spec.default is None else f" (default {spec.default})"
        parser.add_argument(
            *short.get(name, ()), flag, dest=name, type=_parser_for(name), default=None,
            metavar=name.upper(), help=f"{spec.help}{default}; env {spec.env}",
        )


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The reranker options given on the command line (flags left out are not included)."""
    return {name: getattr(args, name) for name, spec in option_specs().items() if spec.cli and getattr(args, name, None) is not None}


def reranker_from_args(args: argparse.Namespace, **overrides: Any) -> Any:
    """A reranker from the given flags, then the environment, the configuration file and the defaults."""
    from crossrank import Reranker

    given = given_options(args)
    if sys.stderr.isatty():
        given["show_progress"] = True
    given.update({k: v for k, v in overrides.items() if v is not None})
    return Reranker(**given)
