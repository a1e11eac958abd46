"""``crossrank feedback export``: turn a feedback log into the trainer's interaction log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crossrank.feedback import FeedbackLog, export_interactions
from crossrank.models.files import atomic_write_text


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "feedback",
        help="export recorded feedback",
        description="Work with feedback logs written by crossrank.feedback.FeedbackLog.",
    )
    actions = parser.add_subparsers(dest="feedback_command", metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write the trainer's interaction log (JSONL)",
        description=(
            'One JSON object per impression: {"query": ..., "shown": [...], "clicked": [...]} '
            "plus query_id, scores, model, served_by and time."
        ),
    )
    export.add_argument("log", help="feedback log (.jsonl, .sqlite, .sqlite3 or .db)")
    export.add_argument("--output", "-o", default="-", help="output JSONL file, or - for stdout")
    export.add_argument(
        "--documents", choices=("ids", "text"), default="ids", help="document ids (default) or stored text"
    )
    export.add_argument("--only-used", action="store_true", help="skip impressions where nothing was used")
    export.add_argument("--kinds", default=None, help="comma-separated kinds of use to count (default: all)")
    export.set_defaults(handler=run_export)
    parser.set_defaults(handler=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_export(args: argparse.Namespace) -> int:
    import io

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None
    buffer = io.StringIO()
    log = FeedbackLog(args.log)
    written = export_interactions(log, buffer, documents=args.documents, only_used=args.only_used, kinds=kinds)
    if args.output == "-":
        sys.stdout.write(buffer.getvalue())
    else:
        atomic_write_text(Path(args.output), buffer.getvalue())
    notes = []
    if log.skipped:
        notes.append(f"skipped {log.skipped} corrupt records (first: {log.corrupt_records[0]})")
    if log.unmatched_uses:
        notes.append(f"{log.unmatched_uses} uses refer to an impression or document not in this log")
    summary = f"exported {written} interactions" + "".join(f"; {note}" for note in notes)
    sys.stderr.write(" ".join(summary.split()) + "\n")
    return 0
