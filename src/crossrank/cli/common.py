"""Options and helpers shared by several commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from crossrank.errors import InvalidInputError
from crossrank.models.sources import DEFAULT_MODEL

__all__ = ["add_model_options", "reranker_from_args", "parse_threshold", "parse_unit_interval", "read_jsonl_documents"]


def parse_unit_interval(text: str, what: str = "a number in [0, 1]") -> float:
    """A command-line number that must lie in [0, 1]; ``what`` words the expectation in errors."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}; received {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected {what}; received {text}")
    return value


def parse_threshold(text: str) -> float | str:
    if text == "calibrated":
        return text
    return parse_unit_interval(text, "a probability in [0, 1] or 'calibrated'")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    # Defaults are None so that an option left out falls back to the environment, the config
    # file, then the engine's default (see crossrank.settings), exactly as in Python.
    parser.add_argument("--model", default=None, help=f"model folder, Hugging Face id or registered name (default {DEFAULT_MODEL})")
    parser.add_argument("--backend", default=None, help="auto, onnx, torch or a plugin backend")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per query/passage pair")
    parser.add_argument("--long-documents", choices=("truncate", "window", "select"), default=None)
    parser.add_argument("--batch-size", type=int, default=None)


def reranker_from_args(args: argparse.Namespace, **overrides: Any) -> Any:
    from crossrank import Reranker

    given = {
        option: getattr(args, option)
        for option in ("model", "backend", "device", "max_length", "long_documents", "batch_size")
        if getattr(args, option, None) is not None
    }
    if sys.stderr.isatty():
        given["show_progress"] = True
    return Reranker(**given, **overrides)


def read_jsonl_documents(source: str) -> list[dict[str, Any] | str]:
    """Read documents from a JSONL file (or ``-`` for stdin): a JSON string or object per line."""
    if source == "-":
        # Bytes, so invalid UTF-8 is reported with its line instead of failing inside the decoder.
        return list(_parse_lines(getattr(sys.stdin, "buffer", sys.stdin), "<stdin>"))
    path = Path(source)
    if not path.is_file():
        raise InvalidInputError(f"--documents: expected a JSONL file or '-'; {source} does not exist")
    with path.open("rb") as handle:
        return list(_parse_lines(handle, source))


def _parse_lines(handle: Iterable[bytes | str], name: str) -> Iterator[dict[str, Any] | str]:
    for number, raw in enumerate(handle, start=1):
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a leading BOM is not text
            except UnicodeDecodeError as exc:
                raise InvalidInputError(
                    f"{name} line {number}: expected UTF-8 text; byte {exc.start} is {raw[exc.start:exc.start + 1]!r}"
                ) from None
        else:
            line = raw
        if not line.strip():
            continue  # blank lines separate nothing and hold no document
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{name} line {number}: expected a JSON string or object ({exc.msg})") from None
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            yield item
        else:
            raise InvalidInputError(
                f"{name} line {number}: expected a JSON string or an object with a string 'text'; "
                f"received {type(item).__name__}"
            )
