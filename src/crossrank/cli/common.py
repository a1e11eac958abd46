"""Options and helpers shared by several commands."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from crossrank.documents import parse_json
from crossrank.errors import InvalidInputError
from crossrank.models.sources import DEFAULT_MODEL

__all__ = [
    "parse_positive_ints",
    "add_model_options",
    "reranker_from_args",
    "parse_threshold",
    "parse_unit_interval",
    "read_jsonl_documents",
    "strict_json",
    "write_json",
]


def parse_unit_interval(text: str, what: str = "a number in [0, 1]") -> float:
    """A command-line number that must lie in [0, 1]; ``what`` words the expectation in errors."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}; received {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected {what}; received {text}")
    return value


def parse_positive_ints(text: str) -> list[int]:
    """A command-line list of positive integers, comma-separated (``"5,10,25"``)."""
    return parse_int_list(text, minimum=1)


def parse_int_list(text: str, *, minimum: int) -> list[int]:
    """A non-empty command-line list of integers >= ``minimum``, comma-separated."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers; received {text!r}") from None
    if not values or any(v < minimum for v in values):
        expected = "positive integers" if minimum == 1 else f"integers >= {minimum}"
        raise argparse.ArgumentTypeError(f"expected {expected}; received {text!r}")
    return values


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
    """Read documents from a JSONL file (or ``-`` for stdin): a JSON string or object per line.

    Any readable path works, a named pipe or ``/dev/fd/N`` (a shell's ``<(command)``) included.
    Every problem with the input is an :class:`InvalidInputError` naming the source and line.
    """
    if source == "-":
        stdin = sys.stdin
        if stdin is None or getattr(stdin, "closed", False):
            raise InvalidInputError("--documents -: standard input is closed; pass a JSONL file or pipe documents in")
        # Bytes, so invalid UTF-8 is reported with its line instead of failing inside the decoder.
        return list(_parse_lines(getattr(stdin, "buffer", stdin), "<stdin>"))
    path = Path(source)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InvalidInputError(f"--documents: expected a JSONL file or '-'; {source} does not exist") from None
    except IsADirectoryError:
        raise InvalidInputError(f"--documents: expected a JSONL file or '-'; {source} is a directory") from None
    except PermissionError:
        raise InvalidInputError(f"--documents: {source} cannot be read (permission denied)") from None
    with handle:
        if path.is_dir():  # some platforms open a directory and fail only on read
            raise InvalidInputError(f"--documents: expected a JSONL file or '-'; {source} is a directory")
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
            item = parse_json(line)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{name} line {number}: expected a JSON string or object ({exc})") from None
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            yield item
        else:
            raise InvalidInputError(
                f"{name} line {number}: expected a JSON string or an object with a string 'text'; "
                f"received {type(item).__name__}"
            )


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, infinity) replaced by ``None``, for strict JSON output.

    Example:
        >>> strict_json({"score": float("nan"), "ranks": [1, float("inf")]})
        {'score': None, 'ranks': [1, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def write_json(value: Any, stream: TextIO) -> None:
    """Write ``value`` as strict JSON (non-finite numbers become ``null``), indented, with a final newline."""
    stream.write(json.dumps(strict_json(value), ensure_ascii=False, indent=2, allow_nan=False))
    stream.write("\n")
