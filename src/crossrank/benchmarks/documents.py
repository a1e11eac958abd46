"""Huge-document benchmark: what one 1 MB or 5 MB document costs under each long-document mode.

``crossrank bench documents`` encodes one query with one synthetic document of each size under
``truncate``, ``window`` and ``select``, with the model's own tokenizer and the engine's default
encoder settings (the model's ``max_length``, ``max_windows=8``). Each measurement runs in its
own fresh process, so the peak resident memory belongs to that document alone, and is repeated;
the section reports the median. ``--compare-encoder FILE`` measures an earlier version of
``crossrank/encoding.py`` (for example one written out with ``git show REV:src/crossrank/encoding.py``)
in the same run, as a *before* column.

Example:
    >>> from crossrank.benchmarks.documents import synthetic_document
    >>> len(synthetic_document(1000))
    1000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crossrank.errors import CrossRankError, InvalidInputError
from crossrank.models.sources import DEFAULT_MODEL

__all__ = [
    "DocumentPoint",
    "DocumentFigure",
    "synthetic_document",
    "measure_document_point",
    "run_document_benchmark",
    "documents_markdown",
    "register",
]

SECTION = "huge-documents"
MODES = ("truncate", "window", "select")
DEFAULT_SIZES = (1_000_000, 5_000_000)
QUERY = "which treatment increased protein expression in human cells"


def synthetic_document(characters: int, *, seed: int = 0) -> str:
    """Exactly ``characters`` characters of English-like sentences, deterministic for a seed."""
    from crossrank.benchmarks.reliability import _WORDS

    if characters < 0:
        raise InvalidInputError(f"characters must be >= 0; received {characters}")
    rng = random.Random(seed)
    sentences = []
    for _ in range(512):  # a pool of distinct sentences, repeated in a seeded order
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 24))]
        sentences.append(" ".join(words).capitalize() + rng.choice([". ", ". ", ". ", "? ", "! ", ".\n"]))
    parts: list[str] = []
    length = 0
    while length < characters:
        sentence = sentences[rng.randrange(len(sentences))]
        parts.append(sentence)
        length += len(sentence)
    return "".join(parts)[:characters]


@dataclass(frozen=True)
class DocumentPoint:
    """One process that encoded one query with one document of ``characters`` characters."""

    encoder: str
    mode: str
    characters: int
    max_length: int
    rows: int
    row_tokens: int
    truncated_documents: int
    partially_scanned_documents: int | None
    rss_before_mib: float
    peak_rss_mib: float
    seconds: float
    peak_is_encoding_only: bool

    @property
    def growth_mib(self) -> float:
        return self.peak_rss_mib - self.rss_before_mib


@dataclass(frozen=True)
class DocumentFigure:
    """Medians over the repeats of one (encoder, mode, size) measurement."""

    encoder: str
    mode: str
    characters: int
    repeats: int
    rows: int
    row_tokens: int
    truncated_documents: int
    partially_scanned_documents: int | None
    median_growth_mib: float
    median_peak_rss_mib: float
    median_seconds: float
    min_seconds: float
    max_seconds: float


def _tokenizer_file(model: str, tokenizer: str | None) -> tuple[Path, int]:
    """The tokenizer file to use and the model's ``max_length``."""
    if tokenizer is not None:
        path = Path(tokenizer)
        if not path.is_file():
            raise InvalidInputError(f"--tokenizer must be an existing tokenizer.json file; received {tokenizer!r}")
        return path, 512
    from crossrank.models.resolve import resolve_model

    resolved = resolve_model(model)
    return resolved.path / resolved.config.tokenizer_file, resolved.config.max_length


def _load_encoder_class(encoder_file: str | None) -> type:
    if encoder_file is None:
        from crossrank.encoding import PairEncoder

        return PairEncoder
    path = Path(encoder_file)
    if not path.is_file():
        raise InvalidInputError(f"--compare-encoder must be an existing Python file; received {encoder_file!r}")
    spec = importlib.util.spec_from_file_location("crossrank_compared_encoding", path)
    if spec is None or spec.loader is None:
        raise InvalidInputError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    encoder_class = getattr(module, "PairEncoder", None)
    if not isinstance(encoder_class, type):
        raise InvalidInputError(f"{path} defines no PairEncoder class")
    return encoder_class


def measure_document_point(
    mode: str,
    characters: int,
    *,
    model: str = DEFAULT_MODEL,
    tokenizer: str | None = None,
    max_length: int | None = None,
    encoder_file: str | None = None,
) -> DocumentPoint:
    """Encode one query with one ``characters``-long document in this process and report its cost.

    Meant to run in a fresh process (see :func:`run_document_benchmark`): the document and the
    encoder are built first, a short pair is encoded to warm the tokenizer up, and then the
    kernel's peak mark is reset so the peak covers encoding the huge document alone.
    """
    from crossrank.benchmarks.reliability import _current_rss_mib, _peak_rss_mib, _reset_peak_rss

    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {MODES}; received {mode!r}")
    path, model_max_length = _tokenizer_file(model, tokenizer)
    length = max_length or model_max_length
    encoder = _load_encoder_class(encoder_file).from_file(path, max_length=length, long_documents=mode)
    document = synthetic_document(characters)
    encoder.encode([QUERY], [document[:2000]], [0])
    rss_before = _current_rss_mib()
    reset = _reset_peak_rss()
    started = time.perf_counter()
    segments, report = encoder.encode([QUERY], [document], [0])
    seconds = time.perf_counter() - started
    peak = _peak_rss_mib()
    return DocumentPoint(
        encoder="before" if encoder_file else "after",
        mode=mode,
        characters=characters,
        max_length=length,
        rows=len(segments),
        row_tokens=sum(len(s.input_ids) for s in segments),
        truncated_documents=report.truncated_documents,
        partially_scanned_documents=getattr(report, "partially_scanned_documents", None),
        rss_before_mib=round(rss_before, 1),
        peak_rss_mib=round(peak, 1),
        seconds=round(seconds, 4),
        peak_is_encoding_only=reset,
    )


def _measure_in_subprocess(
    mode: str, characters: int, *, model: str, tokenizer: str | None, max_length: int | None, encoder_file: str | None
) -> DocumentPoint:
    command = [sys.executable, "-m", "crossrank.benchmarks.documents", "point", "--mode", mode,
               "--characters", str(characters), "--model", model]
    if tokenizer is not None:
        command += ["--tokenizer", tokenizer]
    if max_length is not None:
        command += ["--max-length", str(max_length)]
    if encoder_file is not None:
        command += ["--encoder-file", encoder_file]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise CrossRankError(
            f"document measurement ({mode}, {characters} characters) failed (exit {completed.returncode}): "
            f"{completed.stderr.strip()[-800:]}"
        )
    return DocumentPoint(**json.loads(completed.stdout.strip().splitlines()[-1]))


def run_document_benchmark(
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    modes: Sequence[str] = MODES,
    repeats: int = 3,
    model: str = DEFAULT_MODEL,
    tokenizer: str | None = None,
    max_length: int | None = None,
    compare_encoder: str | None = None,
) -> list[DocumentFigure]:
    """Measure every (encoder, mode, size), each repeat in its own fresh process; medians per cell.

    ``compare_encoder`` is the path of an earlier ``encoding.py`` measured as *before* beside the
    installed encoder (*after*); repeats of the two alternate so that both see the same machine.
    """
    if repeats < 1:
        raise InvalidInputError(f"repeats must be >= 1; received {repeats}")
    if any(size < 1 for size in sizes) or not sizes:
        raise InvalidInputError(f"sizes must be positive character counts; received {list(sizes)}")
    for mode in modes:
        if mode not in MODES:
            raise InvalidInputError(f"modes must be among {MODES}; received {mode!r}")
    encoders: list[str | None] = [compare_encoder, None] if compare_encoder else [None]
    points: dict[tuple[str, str, int], list[DocumentPoint]] = {}
    for _ in range(repeats):
        for mode in modes:
            for size in sizes:
                for encoder_file in encoders:
                    point = _measure_in_subprocess(
                        mode, size, model=model, tokenizer=tokenizer, max_length=max_length, encoder_file=encoder_file
                    )
                    points.setdefault((point.encoder, mode, size), []).append(point)
    figures = []
    for (encoder, mode, size), measured in points.items():
        seconds = [p.seconds for p in measured]
        figures.append(
            DocumentFigure(
                encoder=encoder,
                mode=mode,
                characters=size,
                repeats=len(measured),
                rows=measured[0].rows,
                row_tokens=measured[0].row_tokens,
                truncated_documents=measured[0].truncated_documents,
                partially_scanned_documents=measured[0].partially_scanned_documents,
                median_growth_mib=round(statistics.median(p.growth_mib for p in measured), 1),
                median_peak_rss_mib=round(statistics.median(p.peak_rss_mib for p in measured), 1),
                median_seconds=round(statistics.median(seconds), 4),
                min_seconds=min(seconds),
                max_seconds=max(seconds),
            )
        )
    return figures


def _size(characters: int) -> str:
    return f"{characters / 1_000_000:g} MB" if characters >= 100_000 else f"{characters:,} chars"


def documents_markdown(
    figures: Sequence[DocumentFigure], *, model: str, max_length: int | None = None, before_label: str | None = None,
    note: str | None = None,
) -> str:
    """The ``BENCHMARKS.md`` section: one row per mode and size, before and after side by side."""
    after = {(f.mode, f.characters): f for f in figures if f.encoder == "after"}
    before = {(f.mode, f.characters): f for f in figures if f.encoder == "before"}
    repeats = max((f.repeats for f in figures), default=0)
    length = f"`max_length={max_length}`" if max_length else "the model's `max_length`"
    lines = [
        "## Huge documents: cost of one 1 MB or 5 MB document under each long-document mode",
        "",
        f"Tokenizer of `{model}`, {length}, the engine's other encoder defaults (`max_windows=8`, "
        "selection scanning `max_windows * max_length` tokens); one query and one synthetic English document "
        "(sentences of common words) encoded by `PairEncoder.encode`, each measurement in a fresh process, "
        f"median of {repeats}. *Growth* is the peak resident memory while encoding minus the resident memory "
        "just before (the kernel's peak mark is reset first); the document string itself is already in "
        "*before*. *Rows* are the model inputs produced and *cut* the documents counted as truncated "
        "(*scan cut*: counted as partially scanned by `select`).",
    ]
    if before:
        lines += [
            "",
            f"*Before*: {before_label or 'the encoder given with --compare-encoder'}; *after*: this version.",
            "",
            "| mode | document | before: growth (MiB) | before: seconds | after: growth (MiB) | after: seconds | rows (before / after) | cut / scan cut (after) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
    else:
        lines += ["", "| mode | document | growth (MiB) | seconds | rows | cut / scan cut |", "|---|---:|---:|---:|---:|---:|"]
    for (mode, characters), figure in sorted(after.items(), key=lambda item: (MODES.index(item[0][0]), item[0][1])):
        scan = "-" if figure.partially_scanned_documents is None else str(figure.partially_scanned_documents)
        counts = f"{figure.truncated_documents} / {scan}"
        old = before.get((mode, characters))
        if before:
            old_cells = (
                f"{old.median_growth_mib:.1f} | {old.median_seconds:.3f} | " if old else "- | - | "
            )
            rows = f"{old.rows if old else '-'} / {figure.rows}"
            lines.append(
                f"| {mode} | {_size(characters)} | {old_cells}{figure.median_growth_mib:.1f} | "
                f"{figure.median_seconds:.3f} | {rows} | {counts} |"
            )
        else:
            lines.append(
                f"| {mode} | {_size(characters)} | {figure.median_growth_mib:.1f} | {figure.median_seconds:.3f} | "
                f"{figure.rows} | {counts} |"
            )
    if note:
        lines += ["", note]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ command line
def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(part)) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated character counts; received {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"expected positive character counts; received {text!r}")
    return sizes


def _modes(text: str) -> list[str]:
    modes = [part.strip() for part in text.split(",") if part.strip()]
    if not modes or any(m not in MODES for m in modes):
        raise argparse.ArgumentTypeError(f"expected comma-separated modes from {','.join(MODES)}; received {text!r}")
    return modes


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``documents`` to ``crossrank bench``."""
    parser = subparsers.add_parser(
        "documents",
        help="peak RSS and time of one 1 MB / 5 MB document under truncate, window and select",
        description="What one huge document costs to encode under each long-document mode, one fresh process per measurement.",
    )
    parser.add_argument("--sizes", type=_sizes, default=list(DEFAULT_SIZES), help="document sizes in characters (default 1000000,5000000)")
    parser.add_argument("--modes", type=_modes, default=list(MODES), help="comma-separated (default truncate,window,select)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per cell; the median is reported (default 3)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model whose tokenizer and max_length are used")
    parser.add_argument("--tokenizer", default=None, help="a tokenizer.json to use instead of the model's")
    parser.add_argument("--max-length", type=int, default=None, help="default: the model's max_length (512 with --tokenizer)")
    parser.add_argument("--compare-encoder", default=None, help="an earlier encoding.py measured as 'before' in the same run")
    parser.add_argument("--compare-label", default=None, help="what --compare-encoder is, for the section text")
    parser.add_argument("--quick", action="store_true", help="reduced run: 100000 characters, 1 repeat, not written")
    parser.add_argument("--output", default="BENCHMARKS.md", help="file whose section is rewritten")
    parser.add_argument("--section", default=None, help=f"BENCHMARKS.md section name (default {SECTION})")
    parser.add_argument("--no-write", action="store_true", help="print the figures only; leave BENCHMARKS.md alone")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--note", default=None, help="a sentence added to the section")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``crossrank bench documents``."""
    from crossrank.benchmarks import write_section

    sizes, repeats, write = args.sizes, args.repeats, not args.no_write
    if args.quick:
        sizes, repeats, write = [100_000], 1, False
    if repeats < 1:
        raise InvalidInputError(f"--repeats must be >= 1; received {repeats}")
    if args.max_length is not None and args.max_length < 8:
        raise InvalidInputError(f"--max-length must be >= 8; received {args.max_length}")
    figures = run_document_benchmark(
        sizes=sizes, modes=args.modes, repeats=repeats, model=args.model, tokenizer=args.tokenizer,
        max_length=args.max_length, compare_encoder=args.compare_encoder,
    )
    shown_model = args.tokenizer or args.model
    body = documents_markdown(
        figures, model=shown_model, max_length=args.max_length, before_label=args.compare_label, note=args.note
    )
    if args.json:
        sys.stdout.write(json.dumps([asdict(f) for f in figures]) + "\n")
    else:
        sys.stdout.write(body + "\n")
    if write:
        write_section(args.section or SECTION, body, path=args.output)
    return 0


def _point_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the per-measurement subprocess: prints one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m crossrank.benchmarks.documents")
    commands = parser.add_subparsers(dest="command", required=True)
    point = commands.add_parser("point")
    point.add_argument("--mode", required=True, choices=MODES)
    point.add_argument("--characters", type=int, required=True)
    point.add_argument("--model", default=DEFAULT_MODEL)
    point.add_argument("--tokenizer", default=None)
    point.add_argument("--max-length", type=int, default=None)
    point.add_argument("--encoder-file", default=None)
    args = parser.parse_args(argv)
    measured: Any = measure_document_point(
        args.mode, args.characters, model=args.model, tokenizer=args.tokenizer,
        max_length=args.max_length, encoder_file=args.encoder_file,
    )
    sys.stdout.write(json.dumps(asdict(measured)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_point_main())
