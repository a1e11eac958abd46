"""Benchmark helpers: machine description and ``BENCHMARKS.md`` sections.

Each benchmark command owns one section of ``BENCHMARKS.md``, delimited by HTML comments, and
rewrites only that section, so commands can run in any order without erasing each other.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import statistics
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from crossrank.models.files import atomic_write_text

__all__ = ["machine_description", "write_section", "median_min_max", "command_line"]

_HEADER = (
    "# Benchmarks\n\n"
    "Every figure below was measured by the command shown with it, on the machine described with it; "
    "each command rewrites only its own section.\n"
)


def machine_description() -> str:
    """CPU model, core count, memory, int8 instruction set and software versions, on one line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        pass
    import onnxruntime

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from crossrank.quantization import int8_instruction_set

    return (
        f"{cpu}, {cores} cores{memory}, int8 instructions {int8_instruction_set()}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}"
    )


def command_line() -> str:
    """The command that is running, as a user would type it (quoted so that it can be pasted into a shell)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("crossrank", "__main__.py")):
        argv[0] = "crossrank"
    return shlex.join(argv)


def median_min_max(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def write_section(name: str, body: str, *, path: str | Path = "BENCHMARKS.md", command: str | None = None) -> Path:
    """Replace (or append) section ``name`` of ``BENCHMARKS.md`` with ``body``.

    The section records the date, the machine and the command automatically.
    """
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise ValueError(f"section name must be lower-case letters, digits and dashes; received {name!r}")
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else _HEADER
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"<!-- section:{name} -->\n"
        f"{body.rstrip()}\n\n"
        f"- Command: `{command or command_line()}`\n"
        f"- Date: {date}\n"
        f"- Machine: {machine_description()}\n"
        f"<!-- /section:{name} -->"
    )
    pattern = re.compile(rf"<!-- section:{name} -->.*?<!-- /section:{name} -->", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    return atomic_write_text(path, text)
