"""Feedback log benchmark: the cost of one ``record_shown`` call, JSONL against SQLite.

Run ``crossrank bench feedback`` (or ``python -m crossrank.benchmarks.feedback``). Each
configuration records ``--events`` impressions of ``--documents`` scored documents into a fresh
log in ``--dir``; the figure is the wall time per event, median over ``--repeats`` runs, with
the configurations interleaved run by run so that a change in machine load affects them alike:

- JSONL and SQLite as :class:`~crossrank.feedback.FeedbackLog` writes them (one complete line
  per ``write``; one SQLite connection per log, write-ahead log, statements compiled once);
- the same with ``durable=True`` (a disk flush per event);
- the former write paths, re-created here for comparison: a JSONL file opened in text mode for
  every event, and an SQLite connection opened per event that runs the schema statements and
  commits in SQLite's default rollback-journal mode.

The section ``feedback-log`` of ``BENCHMARKS.md`` is rewritten with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crossrank.benchmarks import median_min_max
from crossrank.errors import InvalidInputError
from crossrank.feedback import _SCHEMA, FeedbackLog
from crossrank.results import ScoredDocument

__all__ = ["FEEDBACK_SECTION", "FeedbackTiming", "main", "register", "run_feedback_benchmark"]

FEEDBACK_SECTION = "feedback-log"


class _FormerWritePath(FeedbackLog):
    """A log that writes as crossrank did before one connection per log: the comparison baseline."""

    def _append(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.format == "jsonl":
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(event, ensure_ascii=False) + "\n")
                return
            connection = sqlite3.connect(self.path, timeout=30.0)
            try:
                for statement in _SCHEMA:
                    connection.execute(statement)
                with connection:
                    if event["event"] == "shown":
                        connection.execute(
                            "INSERT INTO impressions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (event["impression"], event["time"], event["query_hash"], event["query"], event["query_id"],
                             event["model"], event["served_by"], json.dumps(event["documents"], ensure_ascii=False)),
                        )
                    else:
                        connection.execute(
                            "INSERT INTO uses VALUES (?, ?, ?, ?, ?)",
                            (event["impression"], event.get("document"), event.get("index"), event["kind"], event["time"]),
                        )
            finally:
                connection.close()


# (label, file suffix, factory)
_CONFIGURATIONS: tuple[tuple[str, str, Callable[[Path], FeedbackLog]], ...] = (
    ("JSONL", ".jsonl", lambda path: FeedbackLog(path)),
    ("JSONL, durable=True", ".jsonl", lambda path: FeedbackLog(path, durable=True)),
    ("JSONL, former write path (text-mode open per event)", ".jsonl", lambda path: _FormerWritePath(path)),
    ("SQLite (one connection per log)", ".sqlite", lambda path: FeedbackLog(path)),
    ("SQLite, durable=True", ".sqlite", lambda path: FeedbackLog(path, durable=True)),
    ("SQLite, former write path (connection per event)", ".sqlite", lambda path: _FormerWritePath(path)),
)


@dataclass
class FeedbackTiming:
    """Per-event wall time of one configuration, in milliseconds, over the repeats."""

    configuration: str
    events: int
    repeats: int
    median_ms: float
    min_ms: float
    max_ms: float
    records_read_back: int


def _filesystem(folder: Path) -> str:
    """The type of the file system holding ``folder`` (``ext4``, ``tmpfs``...), or ``unknown``."""
    best, kind = "", "unknown"
    try:
        target = str(folder.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def run_feedback_benchmark(
    folder: Path, *, events: int = 200, documents: int = 10, repeats: int = 5
) -> list[FeedbackTiming]:
    """Time ``record_shown`` per event for each configuration; every log is read back and checked."""
    shown = [
        ScoredDocument(i, f"passage {i} " * 20, 1.0 / (i + 1), 2.0 - i, metadata={"id": f"doc-{i}"}, rank=i + 1)
        for i in range(documents)
    ]
    samples: dict[str, list[float]] = {label: [] for label, _, _ in _CONFIGURATIONS}
    read_back: dict[str, int] = {}
    for repeat in range(repeats):
        for number, (label, suffix, factory) in enumerate(_CONFIGURATIONS):
            path = folder / f"run-{repeat}-{number}{suffix}"
            log = factory(path)
            log.record_shown("warm-up query", shown)  # creates the file: the first event is not timed
            start = time.perf_counter()
            for event in range(events):
                log.record_shown(f"query {event}", shown, query_id=f"q{event}")
            samples[label].append((time.perf_counter() - start) * 1000.0 / events)
            log.close()
            read_back[label] = len(FeedbackLog(path).impressions()) - 1
    timings = []
    for label, _, _ in _CONFIGURATIONS:
        median, low, high = median_min_max(samples[label])
        timings.append(FeedbackTiming(label, events, repeats, median, low, high, read_back[label]))
    return timings


def feedback_markdown(
    timings: Sequence[FeedbackTiming], *, documents: int, filesystem: str, load: float | None = None, note: str | None = None
) -> str:
    """The ``feedback-log`` section body."""
    base = {t.configuration.split(",")[0].split(" (")[0]: t for t in timings if "former" in t.configuration}
    lines = [
        "## Feedback log: time per `record_shown`",
        "",
        f"One impression of {documents} scored documents (ids, no text) per event, {timings[0].events} events per run "
        f"after one untimed event, {timings[0].repeats} runs with the configurations interleaved; each log was read "
        f"back afterwards (events read back). Log folder on a `{filesystem}` file system"
        + (f"; 1-minute load average {load:.1f} at the end of the run." if load is not None else "."),
        "",
        "| configuration | median ms/event | min-max ms/event | events read back | speed-up vs former write path (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for timing in timings:
        family = "SQLite" if timing.configuration.startswith("SQLite") else "JSONL"
        former = base.get(family)
        ratio = "" if former is None or timing is former else f"{former.median_ms / timing.median_ms:.2g}x"
        lines.append(
            f"| {timing.configuration} | {timing.median_ms:.3f} | {timing.min_ms:.3f}-{timing.max_ms:.3f} | "
            f"{timing.records_read_back}/{timing.events} | {ratio} |"
        )
    lines += [
        "",
        "Without `durable`, an event has reached the operating system when `record_shown` returns (it survives a killed "
        "process); `durable=True` also waits for the disk (it survives a power cut), so its cost is the disk's flush "
        "latency and depends on the storage far more than on crossrank.",
    ]
    if note:
        lines += ["", note]
    return "\n".join(lines)


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=200, help="timed events per run (default 200)")
    parser.add_argument("--documents", type=int, default=10, help="documents per impression (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per configuration (default 5)")
    parser.add_argument("--dir", default=".", help="folder for the temporary logs (default: the current folder)")
    parser.add_argument("--output", default="BENCHMARKS.md", help="file whose section is rewritten")
    parser.add_argument("--no-write", action="store_true", help="print the figures only; leave BENCHMARKS.md alone")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--note", default=None, help="a sentence added to the section")


def _run(args: argparse.Namespace, command: str | None = None) -> int:
    from crossrank.benchmarks import write_section

    for name in ("events", "documents", "repeats"):
        if getattr(args, name) < 1:
            raise InvalidInputError(f"--{name} must be >= 1; received {getattr(args, name)}")
    parent = Path(args.dir)
    if not parent.is_dir():
        raise InvalidInputError(f"--dir: expected an existing folder; received {args.dir}")
    folder = Path(tempfile.mkdtemp(prefix=".crossrank-feedback-bench-", dir=parent))
    try:
        timings = run_feedback_benchmark(folder, events=args.events, documents=args.documents, repeats=args.repeats)
        filesystem = _filesystem(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    body = feedback_markdown(timings, documents=args.documents, filesystem=filesystem, load=load, note=args.note)
    if args.json:
        sys.stdout.write(json.dumps([asdict(t) for t in timings]) + "\n")
    else:
        sys.stdout.write(body + "\n")
    if not args.no_write:
        write_section(FEEDBACK_SECTION, body, path=args.output, command=command)
    return 0 if all(t.records_read_back == t.events for t in timings) else 1


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``feedback`` to ``crossrank bench``."""
    parser = subparsers.add_parser(
        "feedback",
        help="time per record_shown event, JSONL against SQLite",
        description=__doc__.split("\n")[0] if __doc__ else None,
    )
    _add_options(parser)
    parser.set_defaults(handler=_run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crossrank.benchmarks.feedback", description=__doc__.split("\n")[0] if __doc__ else None)
    _add_options(parser)
    args = parser.parse_args(argv)
    command = " ".join(["python -m crossrank.benchmarks.feedback", *(argv if argv is not None else sys.argv[1:])])
    return _run(args, command=command)


if __name__ == "__main__":
    sys.exit(main())
