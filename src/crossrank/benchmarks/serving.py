"""``crossrank bench abandoned``: threads and memory held by primary calls abandoned at their deadline.

A primary that runs past ``primary_timeout`` cannot be stopped (Python cannot kill a thread):
its call keeps running and holds its documents until it finishes. ``max_abandoned_calls``
bounds how many such calls may still run; beyond it the fallback serves at once. This
benchmark sends N calls, each with a large document, to the embedded default model whose
backend is stalled (each model call waits ``--stall`` seconds before running, as a hung or
overloaded device would) with a deadline far shorter than that, and records, per setting, the
most primary threads alive at once, the peak RSS of the process and how each call was served.
Each setting runs in a fresh process; ``max_abandoned_calls`` of 1,000,000 stands for the
unbounded behaviour.

Example:
    crossrank bench abandoned --calls 30 --document-mb 1 --timeout 0.2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

from crossrank.cli.common import parse_positive_ints

__all__ = ["register", "run_abandoned"]

_CHILD = r"""
import json, resource, sys, threading, time
from crossrank import BackendSpec, Reranker, hookimpl
from crossrank.config import RerankerConfig
from crossrank.plugins import backend_registry, new_plugin_manager

settings = json.loads(sys.argv[1])
onnx = backend_registry()["onnx"]

class Stalled:
    def __init__(self, model_dir, config, device, options):
        self.inner = onnx.build(model_dir, config, device, options)
        self.name, self.batch_invariant = "stalled", self.inner.batch_invariant
        self.concurrent_calls = getattr(self.inner, "concurrent_calls", 1)
    def score(self, *arrays):
        time.sleep(settings["stall"])
        return self.inner.score(*arrays)
    def close(self):
        self.inner.close()

class StalledPlugin:
    @hookimpl
    def crossrank_backends(self):
        return [BackendSpec(name="stalled", factory=Stalled)]

manager = new_plugin_manager(load_entry_points=False)
manager.register(StalledPlugin(), name="stalled")
sentence = "Cells divide when growth signals reach the nucleus and the cycle checkpoints pass. "
document = sentence * (settings["document_mb"] * 2**20 // len(sentence))

def judge(query, texts):
    return [0.5] * len(texts)

config = RerankerConfig(
    model=settings["model"], backend="stalled", fallback=judge, primary_timeout=settings["timeout"],
    max_abandoned_calls=settings["max_abandoned"], long_documents="select",
)
reranker = Reranker.from_config(config, plugin_manager=manager).warm_up()
served = {}
most_threads = 0
for call in range(settings["calls"]):
    documents = [document + str(call), "A short unrelated passage about rivers."]
    reason = reranker.rerank("What makes cells divide?", documents).stats.fallback_reason or "primary"
    kind = reason.split(":")[0]
    served[kind] = served.get(kind, 0) + 1
    most_threads = max(most_threads, sum(t.name == "crossrank-primary" for t in threading.enumerate()))
print(json.dumps({
    "served": served,
    "most_primary_threads": most_threads,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}), flush=True)
import os
os._exit(0)  # abandoned calls may still be queued for minutes; the figures are taken
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("abandoned", help="threads and RSS after many primary calls time out")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--document-mb", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=0.2, help="primary_timeout in seconds")
    parser.add_argument("--stall", type=float, default=20.0, help="seconds each model call waits before running")
    parser.add_argument("--limits", type=parse_positive_ints, default=[2, 1_000_000],
                        help="comma-separated max_abandoned_calls values to compare (default 2,1000000)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--section", default="abandoned-work")
    parser.set_defaults(handler=lambda args: run_abandoned(args))


def _child(settings: dict[str, Any]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSRANK_") or k == "CROSSRANK_HOME"}
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(settings)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        from crossrank.errors import CrossRankError

        raise CrossRankError(f"benchmark child failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_abandoned(args: argparse.Namespace) -> int:
    from crossrank.benchmarks import write_section
    from crossrank.models.resolve import pull_model
    from crossrank.models.sources import DEFAULT_MODEL

    limits = list(args.limits)
    model = str(pull_model(DEFAULT_MODEL).path)
    runs: dict[int, list[dict[str, Any]]] = {limit: [] for limit in limits}
    for _ in range(args.repeats):
        for limit in limits:  # interleaved
            settings = {"model": model, "calls": args.calls, "document_mb": args.document_mb,
                        "timeout": args.timeout, "max_abandoned": limit, "stall": args.stall}
            runs[limit].append(_child(settings))
    rows = []
    for limit in limits:
        results = runs[limit]
        served = results[len(results) // 2]["served"]
        rows.append(
            f"| {limit:,} | {statistics.median(r['most_primary_threads'] for r in results):.0f} | "
            f"{statistics.median(r['peak_rss_mb'] for r in results):,.0f} | "
            + ", ".join(f"{k} {v}" for k, v in sorted(served.items())) + " |"
        )
    body = "\n".join([
        "## Abandoned primary calls: threads and memory",
        "",
        f"{args.calls} calls, each with one {args.document_mb} MB document (sentence selection) and one short one, to the "
        f"embedded default whose backend waits {args.stall:g} s before each model call, with `primary_timeout={args.timeout}` "
        "and a callable fallback; each setting in a fresh process, "
        f"median of {args.repeats}. `max_abandoned_calls=1,000,000` stands for the unbounded behaviour.",
        "",
        "| max_abandoned_calls | most primary threads alive | peak RSS MB | how calls were served |",
        "|---|---|---|---|",
        *rows,
    ])
    write_section(args.section, body, path=args.output)
    sys.stdout.write(body + "\n")
    return 0
