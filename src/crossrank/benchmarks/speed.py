"""``crossrank bench speed``: crossrank against sentence-transformers and FlashRank, side by side.

All configurations score the same SciFact BM25 candidates in one process, interleaved (the
order rotates every repeat), one call per query as a RAG service would make it. Reported per
configuration: pairs/s (median, min–max over repeats), p50/p95 latency for one query with 25
and with 100 candidates, nDCG@10 of its own scores on the same candidates, and, each in a fresh
subprocess, cold start to the first score and peak RSS. ``import crossrank`` time is measured
the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.benchmarks import median_min_max, write_section
from crossrank.errors import BackendUnavailableError, InvalidInputError

__all__ = ["register", "CONFIGURATIONS", "run_speed_benchmark"]

CONFIGURATIONS = (
    "crossrank",
    "crossrank-truncate",
    "crossrank-pertoken",
    "crossrank-select",
    "crossrank-pertensor",
    "crossrank-select-pertensor",
    "crossrank-cascade",
    "crossrank-static",
    "crossrank-2x2",
    "crossrank-openvino",
    "crossrank-openvino-1call",
    "onnx-fp32",
    "onnx-fp32-fused",
    "crossrank-torch",
    "sentence-transformers",
    "flashrank",
)
DEFAULT_CONFIGURATIONS = ("crossrank", "crossrank-torch", "sentence-transformers", "flashrank")
_DESCRIPTIONS = {
    "crossrank": "crossrank default: int8 ONNX, shipped per-tensor graph, one unpadded pair per call, one call per core, query-aware sentence selection",
    "crossrank-truncate": "crossrank default but truncating long documents instead of selecting sentences",
    "crossrank-pertoken": "crossrank int8 ONNX, per-token rewrite of the graph, length-sorted token-budget batches, truncation (the former default)",
    "crossrank-select": "crossrank int8 ONNX, per-token rewrite of the graph, token-budget batches, query-aware sentence selection",
    "crossrank-pertensor": "crossrank default but one call at a time (all cores on one pair)",
    "crossrank-select-pertensor": "crossrank default (an older name for it)",
    "crossrank-cascade": "crossrank int8 ONNX cascade: all candidates at 64 tokens (select), top 10 re-scored",
    "crossrank-static": "static int8 ONNX (QDQ, per-channel weights, activation ranges from 64 train-split pairs) of the imported weights",
    "crossrank-2x2": "crossrank default but two intra-op threads per call (two calls at once on two cores: oversubscribed)",
    "crossrank-openvino": "crossrank default on ONNX Runtime's OpenVINO execution provider (CPU, one thread per call, one call per core)",
    "crossrank-openvino-1call": "crossrank default on ONNX Runtime's OpenVINO execution provider (CPU, its own threading, one call at a time)",
    "onnx-fp32": "fp32 ONNX export of the imported weights, ONNX Runtime's own graph optimizations",
    "onnx-fp32-fused": "fp32 ONNX export with ONNX Runtime transformer fusions (Attention, SkipLayerNorm, BiasGelu)",
    "crossrank-torch": "crossrank, PyTorch backend, fp32 weights imported from the int8 graph",
    "sentence-transformers": "sentence-transformers CrossEncoder, torch fp32, same imported weights",
    "flashrank": "FlashRank 0.2.x on the shipped int8 graph (per-tensor), one padded call per query",
}

Scorer = Callable[[str, Sequence[str]], np.ndarray]


@dataclass
class Workload:
    query_ids: list[str]
    queries: list[str]
    candidates: list[list[str]]  # doc ids per query
    texts: list[list[str]]
    qrels: dict[str, dict[str, int]]

    @property
    def pairs(self) -> int:
        return sum(len(t) for t in self.texts)

    def first(self, count: int) -> Workload:
        """The workload of the first ``count`` queries."""
        kept = self.query_ids[:count]
        return Workload(kept, self.queries[:count], self.candidates[:count], self.texts[:count], {q: self.qrels[q] for q in kept})


@dataclass
class ConfigResult:
    name: str
    throughput: list[float] = field(default_factory=list)
    latency: dict[int, list[float]] = field(default_factory=dict)
    ndcg10: float = float("nan")
    cold_start_s: float = float("nan")
    peak_rss_mb: float = float("nan")


def load_workload(data_dir: Path, *, queries: int, depth: int, split: str = "test") -> Workload:
    from crossrank.evaluation.candidates import bm25_candidates
    from crossrank.evaluation.datasets import load_dataset

    dataset = load_dataset(data_dir)
    qrels = dataset.qrels(split)
    query_ids = [q for q in dataset.split_queries(split) if q in qrels][:queries]
    if not query_ids:
        raise InvalidInputError(f"{data_dir}: no judged queries in split {split!r}")
    # The recorded speed sections were measured on unstemmed BM25 lists; keep their workload.
    candidates = bm25_candidates(dataset, query_ids, depth, stemmer="none")
    return Workload(
        query_ids=query_ids,
        queries=[dataset.queries[q] for q in query_ids],
        candidates=[candidates[q] for q in query_ids],
        texts=[[dataset.document(d) for d in candidates[q]] for q in query_ids],
        qrels={q: dict(qrels[q]) for q in query_ids},
    )


def _ndcg10(workload: Workload, scores: list[np.ndarray]) -> float:
    from crossrank.training.metrics import ndcg_at_k

    values = []
    for query_id, doc_ids, doc_scores in zip(workload.query_ids, workload.candidates, scores):
        order = sorted(range(len(doc_ids)), key=lambda i: (-doc_scores[i], i))
        values.append(ndcg_at_k([doc_ids[i] for i in order], workload.qrels[query_id], 10))
    return float(np.mean(values))


def imported_fp32_model(model_dir: Path) -> Path:
    """The embedded model's int8 weights rebuilt as a float PyTorch checkpoint (cached)."""
    from crossrank.models.files import crossrank_home

    target = crossrank_home() / "bench" / "imported-fp32" / model_dir.name
    if not (target / "model.safetensors").is_file():
        from crossrank.training.onnx_import import import_onnx

        import_onnx(model_dir, target, overwrite=True)
    return target


def exported_graph(model_dir: Path, kind: str, *, data_dir: Path, max_length: int) -> Path:
    """A model folder (cached) holding the imported weights as an ONNX graph of ``kind``.

    ``fp32`` is the plain export, ``fp32-fused`` the same graph through ONNX Runtime's transformer
    optimizer, ``static`` a static int8 quantization whose activation ranges come from 64
    seeded (claim, passage) pairs of the dataset's *train* split (never the test queries the
    benchmark scores).
    """
    from crossrank.models.files import crossrank_home
    from crossrank.training.export import export_onnx, onnx_model_folder

    imported = imported_fp32_model(model_dir)
    root = crossrank_home() / "bench" / "graphs" / model_dir.name
    suffix = f"-{max_length}" if kind == "static" else ""
    target = root / f"{kind}{suffix}"
    if (target / "crossrank.json").is_file():
        return target
    fp32 = root / "fp32"
    if not (fp32 / "crossrank.json").is_file():
        export_onnx(imported, root / "fp32.onnx.tmp")
        onnx_model_folder(fp32, root / "fp32.onnx.tmp", imported / "tokenizer.json", "none")
        (root / "fp32.onnx.tmp").unlink()
    if kind == "fp32":
        return fp32
    if kind == "fp32-fused":
        from onnxruntime.transformers.optimizer import optimize_model

        hf = json.loads((imported / "config.json").read_text())
        optimized = optimize_model(str(fp32 / "model.onnx"), model_type="bert", num_heads=hf["num_attention_heads"],
                                   hidden_size=hf["hidden_size"], opt_level=1)
        target.mkdir(parents=True, exist_ok=True)
        optimized.save_model_to_file(str(target / "model.onnx"))
        return onnx_model_folder(target, target / "model.onnx", imported / "tokenizer.json", "none")
    if kind == "static":
        from crossrank.training.export import calibration_feeds, quantize_int8_static

        target.mkdir(parents=True, exist_ok=True)
        pairs = _train_pairs(data_dir, count=64)
        quantize_int8_static(fp32 / "model.onnx", target / "model.onnx", calibration_feeds(imported / "tokenizer.json", pairs, max_length))
        return onnx_model_folder(target, target / "model.onnx", imported / "tokenizer.json", "static-int8")
    raise InvalidInputError(f"unknown graph kind {kind!r}; expected fp32, fp32-fused or static")


def _train_pairs(data_dir: Path, *, count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Seeded (query, relevant passage) and (query, random passage) pairs from the train split."""
    import random

    from crossrank.evaluation.datasets import load_dataset

    dataset = load_dataset(data_dir)
    qrels = dataset.qrels("train")
    rng = random.Random(seed)
    query_ids = sorted(q for q, judged in qrels.items() if any(v > 0 for v in judged.values()))
    doc_ids = sorted(dataset.corpus)
    pairs: list[tuple[str, str]] = []
    for query_id in rng.sample(query_ids, min(len(query_ids), (count + 1) // 2)):
        relevant = sorted(d for d, v in qrels[query_id].items() if v > 0 and d in dataset.corpus)
        if relevant:
            pairs.append((dataset.queries[query_id], dataset.document(rng.choice(relevant))))
        pairs.append((dataset.queries[query_id], dataset.document(rng.choice(doc_ids))))
    return pairs[:count]


def flashrank_folder(model_dir: Path, workdir: Path) -> Path:
    """A FlashRank cache folder pointing at the shipped (unmodified) int8 graph."""
    folder = workdir / "ms-marco-MiniLM-L-12-v2"
    folder.mkdir(parents=True, exist_ok=True)
    links = {
        "flashrank-MiniLM-L-12-v2_Q.onnx": model_dir / "original" / "model.onnx",
        "tokenizer.json": model_dir / "tokenizer.json",
        "tokenizer_config.json": model_dir / "tokenizer_config.json",
        "special_tokens_map.json": model_dir / "special_tokens_map.json",
        "vocab.txt": model_dir / "vocab.txt",
    }
    for name, source in links.items():
        if not (folder / name).exists():
            (folder / name).symlink_to(source)
    (folder / "config.json").write_text(json.dumps({"pad_token_id": 0}))
    return workdir


MODEL_PREFIXES = ("model=", "model-select=", "model-pertensor=")


def parse_configuration(spec: str, default_length: int) -> tuple[str, int]:
    """``"name"``, ``"name@max_length"`` or ``"model=FOLDER[@max_length]"`` -> (name, max_length).

    ``model=FOLDER`` (or ``model-select=FOLDER`` for sentence selection) scores with crossrank's
    ONNX path on another model folder, e.g. a distilled student beside its teacher;
    ``model-pertensor=FOLDER`` runs that folder's int8 graph with per-tensor activation scales,
    each pair alone and one call per core (how the embedded default runs by default).
    ``profile=NAME`` runs ``Reranker(profile=NAME)`` at its defaults (its own calibrated length
    unless ``@max_length`` is given).
    """
    name, _, length = spec.rpartition("@") if "@" in spec else (spec, "", "")
    if name.startswith("profile="):
        from crossrank.models.profiles import profile_model_path

        profile_model_path(name.partition("=")[2])  # registered, or a ModelNotFoundError saying how to make it
    elif name.startswith(MODEL_PREFIXES):
        folder = name.partition("=")[2]
        if not folder or not Path(folder).is_dir():
            raise InvalidInputError(f"configuration {spec!r}: expected model=FOLDER with an existing model folder")
    elif name not in CONFIGURATIONS:
        raise InvalidInputError(
            f"unknown configuration {name!r}; expected one of {CONFIGURATIONS} or model=FOLDER (optionally @max_length)"
        )
    if not length:
        return name, default_length
    if not length.isdigit() or int(length) < 16:
        raise InvalidInputError(f"configuration {spec!r}: max_length after '@' must be an integer >= 16")
    return name, int(length)


def describe_configuration(spec: str, default_length: int) -> str:
    name, length = parse_configuration(spec, default_length)
    if name.startswith("profile="):
        shown = f"max_length {length}" if "@" in spec else "its calibrated max_length"
        return f"crossrank speed profile `{name.partition('=')[2]}` (Reranker(profile=...)) at its defaults, {shown}"
    if name.startswith(MODEL_PREFIXES):
        kind, _, folder = name.partition("=")
        mode = {
            "model-select": ", query-aware sentence selection",
            "model-pertensor": ", per-tensor activation scales, one unpadded pair per call, one call per core",
        }.get(kind, "")
        return f"crossrank int8 ONNX on model folder `{folder}`{mode}, max_length {length}"
    return f"{_DESCRIPTIONS[name]}, max_length {length}"


def build_scorer(spec: str, *, model_dir: Path, max_length: int, workdir: Path, data_dir: Path = Path("../shared/data/scifact")) -> Scorer:
    """Load one configuration (``name`` or ``name@max_length``); return ``score(query, texts)``."""
    name, max_length = parse_configuration(spec, max_length)
    if name.startswith("profile="):
        from crossrank import Reranker
        from crossrank.config import RerankerConfig

        length = {"max_length": max_length} if "@" in spec else {}
        profiled = Reranker.from_config(RerankerConfig(profile=name.partition("=")[2], **length)).warm_up()
        return lambda query, texts: profiled.score([(query, t) for t in texts], raw=True)
    if name.startswith(MODEL_PREFIXES):
        from crossrank import Reranker
        from crossrank.config import RerankerConfig

        kind, _, folder = name.partition("=")
        runtime = {"backend_options": {"activation_quantization": "per-tensor"}} if kind == "model-pertensor" else {}
        reranker = Reranker.from_config(RerankerConfig(
            model=folder, backend="onnx", max_length=max_length,
            long_documents="select" if kind == "model-select" else "truncate", **runtime)).warm_up()
        return lambda query, texts: reranker.score([(query, t) for t in texts], raw=True)
    if name in ("crossrank", "crossrank-truncate", "crossrank-pertoken", "crossrank-select", "crossrank-pertensor", "crossrank-select-pertensor", "crossrank-static", "crossrank-2x2", "crossrank-openvino", "crossrank-openvino-1call", "onnx-fp32", "onnx-fp32-fused"):
        from crossrank import Reranker
        from crossrank.backends.onnx_backend import usable_cores
        from crossrank.config import RerankerConfig

        if name.startswith("crossrank-openvino"):
            import onnxruntime

            if "OpenVINOExecutionProvider" not in onnxruntime.get_available_providers():
                raise BackendUnavailableError(
                    f"configuration {name!r} needs ONNX Runtime's OpenVINO execution provider (pip install "
                    f"onnxruntime-openvino in place of onnxruntime); this onnxruntime {onnxruntime.__version__} has "
                    f"{onnxruntime.get_available_providers()}"
                )

        # Only what a configuration changes is passed; everything else is the Reranker default.
        changes: dict[str, dict[str, Any]] = {
            "crossrank-truncate": {"long_documents": "truncate"},
            "crossrank-pertoken": {"long_documents": "truncate", "backend_options": {"activation_quantization": "per-token"}},
            "crossrank-select": {"backend_options": {"activation_quantization": "per-token"}},
            "crossrank-pertensor": {"backend_options": {"concurrent_calls": 1}},
            "crossrank-2x2": {"backend_options": {"num_threads": 2, "concurrent_calls": usable_cores()}},
            "crossrank-openvino": {"backend_options": {
                "providers": [("OpenVINOExecutionProvider", {"device_type": "CPU", "num_of_threads": 1})],
                "concurrent_calls": usable_cores()}},
            "crossrank-openvino-1call": {"backend_options": {
                "providers": [("OpenVINOExecutionProvider", {"device_type": "CPU"})], "concurrent_calls": 1}},
            "crossrank-static": {"long_documents": "truncate"},
            "onnx-fp32": {"long_documents": "truncate"},
            "onnx-fp32-fused": {"long_documents": "truncate"},
        }
        settings = changes.get(name, {})
        graphs = {"crossrank-static": "static", "onnx-fp32": "fp32", "onnx-fp32-fused": "fp32-fused"}
        folder = exported_graph(model_dir, graphs[name], data_dir=data_dir, max_length=max_length) if name in graphs else model_dir
        reranker = Reranker.from_config(RerankerConfig(model=str(folder), backend="onnx", max_length=max_length, **settings)).warm_up()
        return lambda query, texts: reranker.score([(query, t) for t in texts], raw=True)
    if name == "crossrank-cascade":
        from crossrank import Reranker
        from crossrank.config import RerankerConfig

        first = Reranker.from_config(RerankerConfig(model=str(model_dir), max_length=64, long_documents="select")).warm_up()
        full = Reranker.from_config(RerankerConfig(model=str(model_dir), max_length=max_length, long_documents="select")).warm_up()

        def cascade(query: str, texts: Sequence[str], depth: int = 10) -> np.ndarray:
            scores = first.score([(query, t) for t in texts], raw=True)
            top = np.argsort(-scores, kind="stable")[:depth]
            # Re-scored candidates rank above the rest; the offset only orders the two tiers.
            scores[top] = 1e4 + full.score([(query, texts[i]) for i in top], raw=True)
            return scores

        return cascade
    if name == "crossrank-torch":
        from crossrank import Reranker
        from crossrank.config import RerankerConfig

        reranker = Reranker.from_config(RerankerConfig(model=str(imported_fp32_model(model_dir)), backend="torch", max_length=max_length)).warm_up()
        return lambda query, texts: reranker.score([(query, t) for t in texts], raw=True)
    if name == "sentence-transformers":
        from sentence_transformers import CrossEncoder

        encoder = CrossEncoder(str(imported_fp32_model(model_dir)), max_length=max_length, device="cpu")
        return lambda query, texts: np.asarray(
            encoder.predict([(query, t) for t in texts], batch_size=32, show_progress_bar=False)
        )
    if name == "flashrank":
        from flashrank import Ranker, RerankRequest

        ranker = Ranker(model_name="ms-marco-MiniLM-L-12-v2", cache_dir=str(flashrank_folder(model_dir, workdir)), max_length=max_length, log_level="WARNING")

        def score(query: str, texts: Sequence[str]) -> np.ndarray:
            ranked = ranker.rerank(RerankRequest(query=query, passages=[{"id": i, "text": t} for i, t in enumerate(texts)]))
            out = np.empty(len(texts))
            for item in ranked:
                out[item["id"]] = float(item["score"])
            return out

        return score
    raise InvalidInputError(f"unknown configuration {name!r}; expected one of {CONFIGURATIONS}")


def _cold_start(name: str, model_dir: Path, max_length: int, workdir: Path, data_dir: Path) -> tuple[float, float]:
    """Seconds from a fresh interpreter to the first score, and that process's peak RSS in MB."""
    code = (
        "import time; t0 = time.perf_counter()\n"
        "from pathlib import Path\n"
        "from crossrank.benchmarks.speed import build_scorer\n"
        f"score = build_scorer({name!r}, model_dir=Path({str(model_dir)!r}), max_length={max_length}, workdir=Path({str(workdir)!r}), "
        f"data_dir=Path({str(data_dir)!r}))\n"
        "score('what is the capital of france', ['Paris is the capital of France.'])\n"
        # VmHWM, not ru_maxrss: ru_maxrss survives exec and would report the parent's peak.
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(time.perf_counter() - t0, int(hwm) / 1024)\n"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    total = time.perf_counter() - started
    _, rss = done.stdout.split()[-2:]
    return total, float(rss)


def _import_time() -> float:
    code = "import time; t0 = time.perf_counter(); import crossrank; print(time.perf_counter() - t0)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout) for _ in range(3)]
    return median_min_max(runs)[0]


def run_speed_benchmark(
    *,
    data_dir: Path,
    configurations: Sequence[str],
    queries: int,
    depth: int,
    max_length: int,
    repeats: int,
    latency_runs: int,
    cold_start: bool,
    quality_queries: int | None = None,
    split: str = "test",
    log: Callable[[str], None] = lambda line: None,
) -> tuple[list[ConfigResult], dict[str, float], Workload]:
    from crossrank import DEFAULT_MODEL, pull_model

    model_dir = pull_model(DEFAULT_MODEL).path
    # The timed queries are the first of the quality queries: one load and one BM25 index serve both.
    quality = None
    if quality_queries is not None and quality_queries > queries:
        quality = load_workload(data_dir, queries=quality_queries, depth=depth, split=split)
        workload = quality.first(queries)
    else:
        workload = load_workload(data_dir, queries=queries, depth=depth, split=split)
    with tempfile.TemporaryDirectory(prefix="crossrank-bench-") as tmp:
        results, extra = _measure(
            Path(tmp), model_dir, workload, configurations, data_dir=data_dir, depth=depth, max_length=max_length,
            repeats=repeats, latency_runs=latency_runs, cold_start=cold_start, quality=quality, log=log,
        )
    if quality is not None:
        extra["quality_queries"] = float(len(quality.queries))
    return results, extra, workload


def _measure(
    workdir: Path,
    model_dir: Path,
    workload: Workload,
    configurations: Sequence[str],
    *,
    data_dir: Path,
    depth: int,
    max_length: int,
    repeats: int,
    latency_runs: int,
    cold_start: bool,
    log: Callable[[str], None],
    quality: Workload | None = None,
) -> tuple[list[ConfigResult], dict[str, float]]:
    log(f"{len(workload.queries)} queries x {depth} candidates = {workload.pairs} pairs, max_length {max_length}")
    scorers = {name: build_scorer(name, model_dir=model_dir, max_length=max_length, workdir=workdir, data_dir=data_dir) for name in configurations}
    results = {name: ConfigResult(name) for name in configurations}
    for name, scorer in scorers.items():  # warm-up call outside the timed runs
        scorer(workload.queries[0], workload.texts[0][:2])
    if quality is not None:
        # Quality on more queries than are timed: an untimed pass before the timed ones.
        for name, scorer in scorers.items():
            results[name].ndcg10 = _ndcg10(quality, [scorer(q, texts) for q, texts in zip(quality.queries, quality.texts)])
            log(f"quality {name}: nDCG@10 {results[name].ndcg10:.4f} on {len(quality.queries)} queries")
    for repeat in range(repeats):
        order = list(configurations[repeat % len(configurations):]) + list(configurations[: repeat % len(configurations)])
        for name in order:
            started = time.perf_counter()
            scores = [scorers[name](q, texts) for q, texts in zip(workload.queries, workload.texts)]
            elapsed = time.perf_counter() - started
            results[name].throughput.append(workload.pairs / elapsed)
            if repeat == 0 and quality is None:
                results[name].ndcg10 = _ndcg10(workload, scores)
            log(f"repeat {repeat + 1}/{repeats} {name}: {workload.pairs / elapsed:.1f} pairs/s")
    latency_texts = {size: [t for texts in workload.texts for t in texts][:size] for size in (25, 100)}
    for size, texts in latency_texts.items():
        if len(texts) < size:
            continue
        for run in range(latency_runs):
            for name in configurations:
                query = workload.queries[run % len(workload.queries)]
                started = time.perf_counter()
                scorers[name](query, texts)
                results[name].latency.setdefault(size, []).append(time.perf_counter() - started)
        log(f"latency with {size} candidates done")
    extra: dict[str, float] = {}
    if cold_start:
        del scorers
        for name in configurations:
            results[name].cold_start_s, results[name].peak_rss_mb = _cold_start(name, model_dir, max_length, workdir, data_dir)
            log(f"cold start {name}: {results[name].cold_start_s:.2f} s, {results[name].peak_rss_mb:.0f} MB")
        extra["import_crossrank_s"] = _import_time()
    return list(results.values()), extra


def format_report(results: list[ConfigResult], extra: dict[str, float], workload: Workload, *, max_length: int, repeats: int, reference: str = "sentence-transformers") -> str:
    by_name = {r.name: r for r in results}
    if "quality_queries" in extra:
        quality_line = (
            f"nDCG@10 is computed from each configuration's own scores on the first {int(extra['quality_queries'])} judged "
            f"queries x the same BM25 depth (an untimed pass; the timed queries are among them)."
        )
    else:
        quality_line = "nDCG@10 is computed from each configuration's own scores on these same candidates."
    reference_speed = median_min_max(by_name[reference].throughput)[0] if reference in by_name else None
    lines = [
        f"### Speed: SciFact test, first {len(workload.queries)} queries x BM25 top {len(workload.texts[0])} = {workload.pairs} pairs",
        "",
        f"One call per query, all configurations in one process, interleaved; pairs/s is the median of {repeats} repeats (min–max). "
        + quality_line
        + " Cold start and peak RSS are measured in a fresh process (import, load, first score).",
        "",
        f"| configuration | pairs/s | vs {reference} | p50 / p95 ms, 25 docs | p50 / p95 ms, 100 docs | nDCG@10 | cold start s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        median, low, high = median_min_max(result.throughput)
        ratio = f"{median / reference_speed:.2f}x" if reference_speed else "–"
        cells = []
        for size in (25, 100):
            runs = result.latency.get(size)
            cells.append(f"{np.percentile(runs, 50) * 1000:.0f} / {np.percentile(runs, 95) * 1000:.0f}" if runs else "–")
        cold = f"{result.cold_start_s:.2f}" if not math.isnan(result.cold_start_s) else "–"
        rss = f"{result.peak_rss_mb:.0f}" if not math.isnan(result.peak_rss_mb) else "–"
        lines.append(
            f"| {describe_configuration(result.name, max_length)} | {median:.1f} ({low:.1f}–{high:.1f}) | {ratio} | "
            f"{cells[0]} | {cells[1]} | {result.ndcg10:.4f} | {cold} | {rss} |"
        )
    if "import_crossrank_s" in extra:
        lines += ["", f"`import crossrank`: {extra['import_crossrank_s'] * 1000:.0f} ms (median of 3 fresh processes)."]
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("speed", help="crossrank vs sentence-transformers and FlashRank on SciFact pairs")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"), help="BEIR folder (default: ../shared/data/scifact)")
    parser.add_argument(
        "--configs",
        default=",".join(DEFAULT_CONFIGURATIONS),
        help=f"comma-separated names from {','.join(CONFIGURATIONS)} or model=FOLDER / model-select=FOLDER / model-pertensor=FOLDER, each optionally NAME@MAX_LENGTH",
    )
    parser.add_argument("--queries", type=int, default=40, help="timed queries (the first N judged test queries)")
    parser.add_argument("--quality-queries", type=int, default=None,
                        help="compute nDCG@10 on the first N judged queries in an untimed pass (default: the timed queries)")
    parser.add_argument("--depth", type=int, default=25, help="BM25 candidates per query")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-runs", type=int, default=10)
    parser.add_argument("--no-cold-start", action="store_true", help="skip the fresh-process measurements")
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"), help="file whose speed section is rewritten")
    parser.add_argument("--section", default=None, help="section name (default: speed-<max_length>)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    configurations = [c.strip() for c in args.configs.split(",") if c.strip()]
    if not configurations:
        raise InvalidInputError(f"--configs: expected names from {CONFIGURATIONS}; received {args.configs!r}")
    for spec in configurations:
        parse_configuration(spec, args.max_length)
    counts = [("--queries", args.queries), ("--depth", args.depth), ("--repeats", args.repeats), ("--latency-runs", args.latency_runs)]
    if args.quality_queries is not None:
        counts.append(("--quality-queries", args.quality_queries))
    for name, value in counts:
        if value < 1:
            raise InvalidInputError(f"{name} must be >= 1; received {value}")
    results, extra, workload = run_speed_benchmark(
        data_dir=args.data,
        configurations=configurations,
        queries=args.queries,
        depth=args.depth,
        max_length=args.max_length,
        repeats=args.repeats,
        latency_runs=args.latency_runs,
        cold_start=not args.no_cold_start,
        quality_queries=args.quality_queries,
        log=lambda line: sys.stderr.write(line + "\n"),
    )
    reference = "sentence-transformers" if "sentence-transformers" in configurations else configurations[0]
    report = format_report(results, extra, workload, max_length=args.max_length, repeats=args.repeats, reference=reference)
    write_section(args.section or f"speed-{args.max_length}", report, path=args.output)
    sys.stdout.write(report + "\n")
    return 0

