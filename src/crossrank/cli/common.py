"""Options and helpers shared by several commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from crossrank.errors import InvalidInputError
from crossrank.models.sources import DEFAULT_MODEL

__all__ = ["add_model_options", "reranker_from_args", "parse_threshold", "read_jsonl_documents"]


def parse_threshold(text: str) -> float | str:
    if text == "calibrated":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1] or 'calibrated'; received {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1]; received {text}")
    return value


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model folder, Hugging Face id or registered name")
    parser.add_argument("--backend", default="auto", help="auto, onnx, torch or a plugin backend")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per query/passage pair")
    parser.add_argument("--long-documents", choices=("truncate", "window", "select"), default="truncate")
    parser.add_argument("--batch-size", type=int, default=32)


def reranker_from_args(args: argparse.Namespace, **overrides: Any) -> Any:
    from crossrank import Reranker

    return Reranker(
        args.model,
        backend=args.backend,
        device=args.device,
        max_length=args.max_length,
        long_documents=args.long_documents,
        batch_size=args.batch_size,
        show_progress=sys.stderr.isatty(),
        **overrides,
    )


def read_jsonl_documents(source: str) -> list[dict[str, Any] | str]:
    """Read documents from a JSONL file (or ``-`` for stdin): a JSON string or object per line."""
    if source == "-":
        return list(_parse_lines(sys.stdin, "<stdin>"))
    path = Path(source)
    if not path.is_file():
        raise InvalidInputError(f"--documents: expected a JSONL file or '-'; {source} does not exist")
    with path.open(encoding="utf-8") as handle:
        return list(_parse_lines(handle, source))


def _parse_lines(handle: TextIO, name: str) -> Iterator[dict[str, Any] | str]:
    for number, line in enumerate(handle, start=1):
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
