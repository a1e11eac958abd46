"""``crossrank bench early-exit``: fewer layers where they are not needed, measured on the default model.

The embedded default (12 BERT layers, int8, the per-tensor graph the engine runs) is cut after
layer ``L`` (default 6) into two ONNX graphs with :class:`onnx.utils.Extractor`: part A (the
embeddings and layers ``0..L-1``) outputs the hidden state after layer ``L-1`` and the extended
attention mask; part B (layers ``L..11``, pooler and classifier) takes both and outputs the
logit. Part A followed by part B is checked to reproduce the full graph's logits (and the
engine's) before anything is measured.

A ridge regression (closed form, numpy) on part A's [CLS] hidden state predicts the full model's
logit; it is fitted on SciFact *train* claims only (BM25 candidates of a seeded sample). Each
test query is then reranked as a cascade: part A on every candidate, the head's prediction ranks
them, and only the candidates that can still reach the top 10 (a fixed number kept, or those
within a margin of the 10th best prediction) continue through part B. Continued candidates are
ordered by the full model's logit above the exited ones, which keep their predicted order.

Reported per setting and data set (every judged test query, BM25 top 25, the engine's own pair
encoding at its default settings): nDCG@10, the paired bootstrap p-value against the full model
on the same candidates, the share of layer computations spent (``(L*n + (12-L)*kept) / (12*n)``)
and the wall time per query, measured in one process, interleaved with the full model. Full-model
logits come from ``crossrank eval``'s score cache (computed by the engine where missing), so the
quality figures need only part A's pass over the candidates.

Example:
    crossrank bench early-exit --output /tmp/early-exit.md
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossrank.benchmarks import median_min_max, write_section
from crossrank.cli.common import parse_int_list
from crossrank.errors import ConfigurationError, InvalidInputError, ModelIntegrityError

if TYPE_CHECKING:
    import onnx

    from crossrank.benchmarks.speed import Workload
    from crossrank.engine.loading import LoadedModel
    from crossrank.evaluation.runner import ScoredSplit
    from crossrank.reranker import Reranker

__all__ = [
    "REPRODUCTION_TOLERANCE",
    "RidgeHead",
    "Setting",
    "SettingResult",
    "SplitGraph",
    "SplitSessions",
    "cascade_scores",
    "engine_graph_path",
    "evaluate_settings",
    "fit_ridge",
    "operation_share",
    "register",
    "run_early_exit",
    "split_graph",
]

_LAYER = re.compile(r"/encoder/layer\.(\d+)/")
REPRODUCTION_TOLERANCE = 1e-4
"""Largest |logit difference| between part A + part B and the full graph accepted as the same model."""


# ---------------------------------------------------------------------------------------------
# The split


@dataclass(frozen=True)
class SplitGraph:
    """A transformer graph cut after ``layer`` encoder layers.

    Attributes:
        part_a: The full graph's inputs to the ``boundary`` tensors.
        part_b: The ``boundary`` tensors to the full graph's outputs.
        boundary: The tensors part B reads from part A: the hidden state after layer
            ``layer - 1`` first, then the rest (the extended attention mask).
        layer: Encoder layers in part A.
        layers: Encoder layers in the whole graph.
    """

    part_a: onnx.ModelProto
    part_b: onnx.ModelProto
    boundary: tuple[str, ...]
    layer: int
    layers: int

    @property
    def hidden(self) -> str:
        """The hidden state after part A's last layer, shape ``(rows, tokens, hidden size)``."""
        return self.boundary[0]


def split_graph(model: onnx.ModelProto, layer: int) -> SplitGraph:
    """Cut a BERT-style ONNX graph (nodes named ``.../encoder/layer.N/...``) after ``layer`` layers.

    Part B is every node downstream of a node of layer ``layer``; the boundary is what those
    nodes read from elsewhere (besides weights and constants), less the tensors computed from
    the boundary alone (the per-tensor quantization of the hidden state moves into part B, so
    both parts compute exactly what the full graph computes).

    Raises:
        ConfigurationError: ``layer`` is not strictly between 0 and the graph's layer count,
            or the graph is not cut cleanly there (no single hidden state from the layer before).
    """
    from onnx.utils import Extractor

    nodes = list(model.graph.node)
    layer_of: dict[int, int] = {}
    for index, node in enumerate(nodes):
        match = _LAYER.search(node.name)
        if match:
            layer_of[index] = int(match.group(1))
    if not layer_of:
        raise ConfigurationError("the graph has no nodes named '.../encoder/layer.N/...'; cannot find its layers")
    layers = max(layer_of.values()) + 1
    if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer < layers:
        raise ConfigurationError(
            f"layer must be an integer from 1 to {layers - 1} (the graph has {layers} layers); received {layer!r}"
        )
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in nodes if node.op_type == "Constant" for out in node.output}
    graph_inputs = {i.name for i in model.graph.input}
    producer = {out: index for index, node in enumerate(nodes) for out in node.output}
    consumers: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(index)
    downstream = {index for index, value in layer_of.items() if value == layer}
    frontier = list(downstream)
    while frontier:
        for out in nodes[frontier.pop()].output:
            for consumer in consumers.get(out, []):
                if consumer not in downstream:
                    downstream.add(consumer)
                    frontier.append(consumer)
    produced = {out for index in downstream for out in nodes[index].output}
    boundary = {
        name
        for index in downstream
        for name in nodes[index].input
        if name and name not in produced and name not in constants
    }
    changed = True
    while changed:
        changed = False
        for name in sorted(boundary):
            source = producer.get(name)
            if source is None:
                continue
            inputs = {i for i in nodes[source].input if i and i not in constants}
            if inputs and inputs <= boundary - {name}:
                boundary.discard(name)
                changed = True
    hidden = [name for name in boundary if name in producer and layer_of.get(producer[name]) == layer - 1]
    if len(hidden) != 1:
        raise ConfigurationError(
            f"cannot cut the graph after layer {layer}: expected one hidden state from layer {layer - 1} among the "
            f"tensors the later layers read, found {sorted(hidden)} in {sorted(boundary)}"
        )
    names = (hidden[0], *sorted(boundary - set(hidden)))
    extractor = Extractor(model)
    part_a = extractor.extract_model([i.name for i in model.graph.input], [n for n in names if n not in graph_inputs])
    part_b = extractor.extract_model(list(names), [o.name for o in model.graph.output])
    return SplitGraph(part_a, part_b, names, layer, layers)


def engine_graph_path(loaded: LoadedModel) -> Path:
    """The ONNX graph the engine's session runs for ``loaded`` (the per-tensor one for the default).

    Raises:
        ConfigurationError: The reranker does not run a per-tensor (dynamic int8) ONNX graph,
            whose scores depend on nothing but the pair; early exit is measured on that graph.
    """
    from crossrank.backends.onnx_backend import _per_tensor_graph

    backend = loaded.backend
    if backend.name != "onnx" or loaded.quantization != "dynamic-int8":
        raise ConfigurationError(
            "early exit is measured on the graph the default engine runs (the ONNX backend with per-tensor "
            f"activation quantization); this reranker runs backend {backend.name!r} with {loaded.quantization!r}"
        )
    if loaded.config.onnx_file is None:
        raise ConfigurationError(f"model {loaded.config.name} has no ONNX graph")
    source, kind = _per_tensor_graph(loaded.path, loaded.config, loaded.path / loaded.config.onnx_file)
    if kind != loaded.quantization:
        raise ConfigurationError(f"the engine runs a {loaded.quantization} graph but {source} is {kind}")
    return Path(source)


Feeds = dict[str, np.ndarray]


class SplitSessions:
    """The engine's graph, whole and cut after ``layer``, in ONNX Runtime sessions like the engine's.

    Each session gets the engine session's own options (threads, optimization level) and
    providers, and rows run alone and unpadded, longest first, ``concurrent_calls`` at a time,
    as the engine runs the per-tensor graph. Pairs are encoded by the engine's encoder.

    Args:
        reranker: A loaded reranker running the per-tensor ONNX graph (see :func:`engine_graph_path`).
        layer: Encoder layers in part A.
    """

    def __init__(self, reranker: Reranker, layer: int) -> None:
        import onnx
        import onnxruntime as ort

        loaded = reranker.loaded
        self.path = engine_graph_path(loaded)
        self.split = split_graph(onnx.load(str(self.path)), layer)
        session = loaded.backend.session  # type: ignore[attr-defined]
        options, providers = session.get_session_options(), session.get_providers()
        self.full = ort.InferenceSession(str(self.path), options, providers=providers)
        self.part_a = ort.InferenceSession(self.split.part_a.SerializeToString(), options, providers=providers)
        self.part_b = ort.InferenceSession(self.split.part_b.SerializeToString(), options, providers=providers)
        self.encoder = loaded.encoder
        self.calls = max(1, int(getattr(loaded.backend, "concurrent_calls", 1)))
        self._inputs = {i.name for i in self.full.get_inputs()}
        self._a_outputs = [o.name for o in self.part_a.get_outputs()]
        self._executor: ThreadPoolExecutor | None = None
        if self.calls > 1:
            self._executor = ThreadPoolExecutor(max_workers=self.calls, thread_name_prefix="crossrank-early-exit")

    @property
    def layer(self) -> int:
        """Encoder layers in part A."""
        return self.split.layer

    @property
    def layers(self) -> int:
        """Encoder layers in the whole graph."""
        return self.split.layers

    def encode(self, queries: Sequence[str], texts: Sequence[str], query_of_pair: Sequence[int]) -> list[Feeds]:
        """One unpadded model row per pair, exactly as the engine encodes it.

        Raises:
            InvalidInputError: The encoder splits a document into several windows.
        """
        from crossrank.batching import pad_batch

        segments, _ = self.encoder.encode(list(queries), list(texts), list(query_of_pair))
        if len(segments) != len(texts) or sorted(s.pair for s in segments) != list(range(len(texts))):
            raise InvalidInputError(
                "early exit needs one model row per pair (long_documents 'select' or 'truncate', not 'window')"
            )
        rows: list[Feeds] = [{} for _ in texts]
        for segment in segments:
            ids, attention, types = pad_batch([(segment.input_ids, segment.token_type_ids)], self.encoder.pad_id)
            feeds = {"input_ids": ids, "attention_mask": attention}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = types
            rows[segment.pair] = feeds
        return rows

    def _map(self, run: Callable[[Feeds], Any], rows: Sequence[Feeds]) -> list[Any]:
        """``run`` on every row, longest first, ``calls`` at a time; results in row order."""
        # A row's first tensor (input_ids, or part A's hidden state) has its token count as dimension 1.
        order = sorted(range(len(rows)), key=lambda i: -int(next(iter(rows[i].values())).shape[1]))
        if self._executor is None or len(rows) < 2:
            results = {i: run(rows[i]) for i in order}
        else:
            futures = {i: self._executor.submit(run, rows[i]) for i in order}
            results = {i: future.result() for i, future in futures.items()}
        return [results[i] for i in range(len(rows))]

    def full_logits(self, rows: Sequence[Feeds]) -> np.ndarray:
        """The full graph's logit of every row."""
        from crossrank.backends.base import logits_to_scores

        return np.array(self._map(lambda feeds: float(logits_to_scores(self.full.run(None, feeds)[0])[0]), rows))

    def run_a(self, rows: Sequence[Feeds]) -> list[Feeds]:
        """Part A on every row: the boundary tensors part B needs (hidden state first)."""

        def run(feeds: Feeds) -> Feeds:
            state = dict(zip(self._a_outputs, self.part_a.run(None, feeds)))
            # A boundary tensor that is a graph input (none in the embedded graph) passes through.
            return {name: state[name] if name in state else feeds[name] for name in self.split.boundary}

        return self._map(run, rows)

    def run_b(self, states: Sequence[Feeds]) -> np.ndarray:
        """Part B on part A's outputs: the full model's logit of every row."""
        from crossrank.backends.base import logits_to_scores

        return np.array(self._map(lambda state: float(logits_to_scores(self.part_b.run(None, state)[0])[0]), states))

    def cls(self, states: Sequence[Feeds]) -> np.ndarray:
        """The [CLS] (first token) hidden state after part A, one row per pair: ``(pairs, hidden size)``."""
        return np.stack([np.asarray(state[self.split.hidden][0, 0, :], dtype=np.float64) for state in states])

    def close(self) -> None:
        """Stop the worker threads (the sessions go with the object)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


# ---------------------------------------------------------------------------------------------
# The exit head and the cascade


@dataclass(frozen=True)
class RidgeHead:
    """A linear prediction of the full model's logit from standardized features.

    Attributes:
        mean: Feature means on the fitting data.
        scale: Feature standard deviations (1 where a feature is constant).
        weights: Coefficients on the standardized features.
        bias: The intercept (the mean target).
        alpha: The ridge penalty chosen.
        cv_rmse: Root mean squared error of held-out predictions at ``alpha`` (grouped folds).
        pairs: Pairs fitted on.
        groups: Distinct groups (queries) fitted on.
    """

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    alpha: float
    cv_rmse: float = float("nan")
    pairs: int = 0
    groups: int = 0

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted logits of ``features`` (``(rows, features)``)."""
        features = np.asarray(features, dtype=np.float64)
        return ((features - self.mean) / self.scale) @ self.weights + self.bias


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> RidgeHead:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    z = (x - mean) / scale
    weights = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return RidgeHead(mean, scale, weights, float(y.mean()), float(alpha))


def fit_ridge(
    features: np.ndarray,
    targets: np.ndarray,
    groups: Sequence[str],
    *,
    alphas: Sequence[float] = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0),
    folds: int = 5,
    seed: int = 0,
) -> RidgeHead:
    """Ridge regression in closed form, its penalty chosen by cross-validation grouped by query.

    Args:
        features: ``(rows, features)``.
        targets: ``(rows,)``, the full model's logits.
        groups: The query of each row: a query's rows are never split across folds.
        alphas: Penalties tried.
        folds: Cross-validation folds (at most the number of groups).
        seed: Seed of the assignment of groups to folds.

    Raises:
        InvalidInputError: Shapes disagree, fewer than two groups, or no penalty to try.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],) or len(groups) != x.shape[0]:
        raise InvalidInputError(
            "expected (rows, features) features with one target and one group per row; received "
            f"{x.shape}, {y.shape} and {len(groups)} groups"
        )
    names = sorted(set(groups))
    if len(names) < 2 or not alphas:
        raise InvalidInputError("fitting the exit head needs at least two queries and one penalty")
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[g]: rank % min(folds, len(names)) for rank, g in enumerate(order)}
    fold = np.array([fold_of[g] for g in groups])
    best: tuple[float, float] | None = None
    for alpha in alphas:
        errors = np.empty_like(y)
        for k in np.unique(fold):
            held = fold == k
            errors[held] = _ridge(x[~held], y[~held], alpha).predict(x[held]) - y[held]
        rmse = float(np.sqrt(np.mean(errors**2)))
        if best is None or rmse < best[1]:
            best = (float(alpha), rmse)
    assert best is not None
    head = _ridge(x, y, best[0])
    return RidgeHead(head.mean, head.scale, head.weights, head.bias, head.alpha, best[1], int(x.shape[0]), len(names))


@dataclass(frozen=True)
class Setting:
    """Which candidates continue through part B.

    Exactly one of ``keep`` (the ``keep`` best predictions; 0: the head alone) and ``margin``
    (every candidate predicted within ``margin`` logits of the ``top``-th best prediction).
    """

    keep: int | None = None
    margin: float | None = None

    def __post_init__(self) -> None:
        if (self.keep is None) == (self.margin is None):
            raise InvalidInputError("a cascade setting keeps a fixed number of candidates or a margin, not both or neither")
        if self.keep is not None and self.keep < 0:
            raise InvalidInputError(f"keep must be >= 0; received {self.keep}")
        if self.margin is not None and not (np.isfinite(self.margin) and self.margin >= 0):
            raise InvalidInputError(f"margin must be a finite number >= 0; received {self.margin}")

    @property
    def label(self) -> str:
        """How the report names the setting."""
        if self.keep == 0:
            return "head only (keep 0)"
        return f"keep {self.keep}" if self.keep is not None else f"margin {self.margin:g}"

    def continued(self, predicted: np.ndarray, *, top: int = 10) -> np.ndarray:
        """Which candidates go through part B (ties broken by candidate position: first-stage rank)."""
        predicted = np.asarray(predicted, dtype=np.float64)
        order = np.argsort(-predicted, kind="stable")
        mask = np.zeros(predicted.shape[0], dtype=bool)
        if self.keep is not None:
            mask[order[: self.keep]] = True
        elif predicted.shape[0] <= top:
            mask[:] = True
        else:
            assert self.margin is not None
            mask = predicted >= predicted[order[top - 1]] - self.margin
        return mask


def cascade_scores(predicted: np.ndarray, full: np.ndarray, continued: np.ndarray) -> np.ndarray:
    """Final ranking scores: continued candidates by their full logit, all above the exited ones by prediction.

    ``full`` is read only where ``continued`` is true. Within each tier the order is that of its
    scores; the exited tier is shifted below the lowest continued score.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    mask = np.asarray(continued, dtype=bool)
    out = predicted.copy()
    if mask.any():
        out[mask] = np.asarray(full, dtype=np.float64)[mask]
        if (~mask).any():
            out[~mask] -= predicted[~mask].max() - out[mask].min() + 1.0
    return out


def operation_share(layer: int, layers: int, candidates: Sequence[int], kept: Sequence[int]) -> float:
    """Layer computations of the cascade over the full model's: ``sum(L*n + (layers-L)*k) / sum(layers*n)``."""
    total = layers * sum(candidates)
    if total == 0:
        return float("nan")
    return (layer * sum(candidates) + (layers - layer) * sum(kept)) / total


# ---------------------------------------------------------------------------------------------
# Quality


@dataclass
class SettingResult:
    """One setting on one data set."""

    label: str
    ndcg: dict[str, float]
    mean: float
    kept: float
    share: float
    overlap: float
    difference: float = 0.0
    p_value: float | None = None
    ms: list[float] = field(default_factory=list)

    @property
    def significantly_below(self) -> bool:
        """Lower than the full model with paired bootstrap p < 0.05."""
        return self.p_value is not None and self.difference < 0 and self.p_value < 0.05


def evaluate_settings(
    qrels: Mapping[str, Mapping[str, float]],
    candidates: Mapping[str, Sequence[str]],
    predicted: Mapping[str, np.ndarray],
    full: Mapping[str, np.ndarray],
    settings: Sequence[Setting],
    *,
    layer: int,
    layers: int,
    top: int = 10,
) -> list[SettingResult]:
    """nDCG@10 of the full model and of each cascade setting, with paired bootstrap p-values against it.

    Args:
        qrels: Judgments of the evaluated queries.
        candidates: Each query's candidate ids, in first-stage order.
        predicted: The head's prediction for each candidate, in the same order.
        full: The full model's logit for each candidate, in the same order.
        settings: The cascade settings.
        layer: Layers in part A.
        layers: Layers in the model.
        top: The cut-off candidates must be able to reach (nDCG@``top``).
    """
    from crossrank.evaluation.metrics import per_query_metric
    from crossrank.evaluation.significance import paired_bootstrap

    metric = f"ndcg@{top}"
    queries = list(candidates)
    sizes = [len(candidates[q]) for q in queries]
    full_top = {q: set(np.argsort(-np.asarray(full[q]), kind="stable")[:top].tolist()) for q in queries}

    def result(label: str, scores: Mapping[str, np.ndarray], kept: Sequence[int]) -> SettingResult:
        run = {q: {d: float(s) for d, s in zip(candidates[q], scores[q])} for q in queries}
        per_query = per_query_metric(dict(qrels), run, metric)
        overlap = [
            len(full_top[q] & set(np.argsort(-scores[q], kind="stable")[:top].tolist()))
            / max(1, min(top, len(candidates[q])))
            for q in queries
        ]
        return SettingResult(
            label=label, ndcg=per_query, mean=float(np.mean(list(per_query.values()))) if per_query else float("nan"),
            kept=float(np.mean(kept)), share=operation_share(layer, layers, sizes, kept), overlap=float(np.mean(overlap)),
        )

    reference = result("full model", {q: np.asarray(full[q], dtype=np.float64) for q in queries}, sizes)
    results = [reference]
    for setting in settings:
        masks = {q: setting.continued(predicted[q], top=top) for q in queries}
        scores = {q: cascade_scores(predicted[q], full[q], masks[q]) for q in queries}
        row = result(setting.label, scores, [int(masks[q].sum()) for q in queries])
        test = paired_bootstrap(reference.ndcg, row.ndcg)
        row.difference, row.p_value = test.difference, test.p_value
        results.append(row)
    return results


# ---------------------------------------------------------------------------------------------
# The run


def _scored(data: str | Path, split: str, depth: int, reranker: Reranker, cache_dir: str | None, *,
            sample: int | None = None, seed: int = 0) -> ScoredSplit:
    """BM25 candidates of ``split`` and the engine's logits for them (through ``crossrank eval``'s cache)."""
    from crossrank.evaluation.runner import EvalSetup, prepare

    setup = EvalSetup(split=split, candidates="bm25", depth=depth, first_stage_weight=0.0, sample=sample, seed=seed)
    scored = prepare(data, setup, reranker, cache_dir=cache_dir, progress=sys.stderr.isatty())
    if not scored.complete:
        raise InvalidInputError(f"{data}: some {split} candidates have no score")
    return scored


def _arrays(scored: ScoredSplit) -> tuple[dict[str, list[str]], dict[str, np.ndarray]]:
    """Each query's candidates and their full-model logits, for queries with candidates."""
    candidates = {q: list(scored.candidates[q]) for q in scored.query_ids if scored.candidates.get(q)}
    full = {q: np.array([scored.logits[q][d] for d in docs], dtype=np.float64) for q, docs in candidates.items()}
    return candidates, full


def _cls_states(sessions: SplitSessions, scored: ScoredSplit, candidates: Mapping[str, Sequence[str]],
                log: Callable[[str], None], *, chunk: int = 512) -> dict[str, np.ndarray]:
    """Part A's [CLS] state of every candidate, per query in candidate order."""
    dataset = scored.dataset
    out: dict[str, np.ndarray] = {}
    queries = list(candidates)
    started, done = time.perf_counter(), 0
    batch: list[str] = []
    for index, q in enumerate(queries):
        batch.append(q)
        if sum(len(candidates[b]) for b in batch) < chunk and index + 1 < len(queries):
            continue
        texts = [dataset.document(d) for b in batch for d in candidates[b]]
        query_of_pair = [i for i, b in enumerate(batch) for _ in candidates[b]]
        states = sessions.cls(sessions.run_a(sessions.encode([dataset.queries[b] for b in batch], texts, query_of_pair)))
        position = 0
        for b in batch:
            out[b] = states[position : position + len(candidates[b])]
            position += len(candidates[b])
        done += len(texts)
        batch = []
        log(f"{dataset.name}: part A on {done} pairs ({time.perf_counter() - started:.0f} s)")
    return out


def _check_reproduction(sessions: SplitSessions, scored: ScoredSplit, candidates: Mapping[str, Sequence[str]],
                        full: Mapping[str, np.ndarray], pairs: int) -> dict[str, float]:
    """Max |logit difference| of part A + part B against the full graph and the engine on ``pairs`` spread pairs.

    Raises:
        ModelIntegrityError: The two parts do not reproduce the full graph.
    """
    items = [(q, i) for q, docs in candidates.items() for i in range(len(docs))]
    chosen = items[:: max(1, len(items) // max(1, pairs))][:pairs]
    dataset = scored.dataset
    queries = sorted({q for q, _ in chosen})
    rows = sessions.encode(
        [dataset.queries[q] for q in queries], [dataset.document(candidates[q][i]) for q, i in chosen],
        [queries.index(q) for q, _ in chosen],
    )
    split = sessions.run_b(sessions.run_a(rows))
    whole = sessions.full_logits(rows)
    engine = np.array([full[q][i] for q, i in chosen])
    check = {
        "pairs": float(len(chosen)),
        "vs_full_graph": float(np.max(np.abs(split - whole))),
        "vs_engine": float(np.max(np.abs(split - engine))),
        "tokens": float(np.mean([row["input_ids"].shape[1] for row in rows])),
    }
    if check["vs_full_graph"] > REPRODUCTION_TOLERANCE or check["vs_engine"] > REPRODUCTION_TOLERANCE:
        raise ModelIntegrityError(
            f"part A + part B do not reproduce the full model: max |logit difference| {check['vs_full_graph']:.3g} against "
            f"the full graph and {check['vs_engine']:.3g} against the engine over {len(chosen)} pairs"
        )
    return check


def _workload(scored: ScoredSplit, candidates: Mapping[str, Sequence[str]], queries: int) -> Workload:
    from crossrank.benchmarks.speed import Workload

    ids = list(candidates)[:queries]
    dataset = scored.dataset
    judged = scored.judgments()
    return Workload(
        query_ids=ids, queries=[dataset.queries[q] for q in ids], candidates=[list(candidates[q]) for q in ids],
        texts=[[dataset.document(d) for d in candidates[q]] for q in ids], qrels={q: dict(judged.get(q, {})) for q in ids},
    )


def _time_settings(sessions: SplitSessions, reranker: Reranker, head: RidgeHead, workload: Workload,
                   full: Mapping[str, np.ndarray], settings: Sequence[Setting], *, repeats: int, top: int,
                   log: Callable[[str], None]) -> tuple[dict[str, list[float]], float, int]:
    """ms per query of the engine, the whole graph and every setting, interleaved; and the max |difference|
    of part B's logits from the engine's over every continued candidate, with their count."""
    checked: list[float] = []

    def cascade(setting: Setting) -> Callable[[int], Any]:
        def run(index: int) -> Any:
            rows = sessions.encode([workload.queries[index]], workload.texts[index], [0] * len(workload.texts[index]))
            states = sessions.run_a(rows)
            predicted = head.predict(sessions.cls(states))
            mask = setting.continued(predicted, top=top)
            logits = np.zeros(len(rows))
            logits[mask] = sessions.run_b([states[i] for i in np.flatnonzero(mask)])
            return cascade_scores(predicted, logits, mask), mask, logits

        return run

    def engine(index: int) -> Any:
        return reranker.score([(workload.queries[index], t) for t in workload.texts[index]], raw=True)

    def whole(index: int) -> Any:
        texts = workload.texts[index]
        return sessions.full_logits(sessions.encode([workload.queries[index]], texts, [0] * len(texts)))

    runs: dict[str, Callable[[int], Any]] = {"full model (engine)": engine, "full graph (this harness)": whole}
    runs.update({setting.label: cascade(setting) for setting in settings})
    names = list(runs)
    for name in names:  # warm-up outside the timed runs
        runs[name](0)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        order = names[repeat % len(names):] + names[: repeat % len(names)]
        for name in order:
            outputs = []
            started = time.perf_counter()
            for index in range(len(workload.queries)):
                outputs.append(runs[name](index))
            timings[name].append((time.perf_counter() - started) * 1000 / len(workload.queries))
            if repeat == 0 and name not in ("full model (engine)", "full graph (this harness)"):
                for index, (_, mask, logits) in enumerate(outputs):
                    reference = full[workload.query_ids[index]]
                    checked.extend(np.abs(logits[mask] - reference[mask]).tolist())
        log(f"timing repeat {repeat + 1}/{repeats} done")
    return timings, (max(checked) if checked else float("nan")), len(checked)


@dataclass
class _DatasetRun:
    name: str
    queries: int
    pairs: int
    results: list[SettingResult]
    timed_queries: int
    engine_ms: list[float] = field(default_factory=list)
    harness_ms: list[float] = field(default_factory=list)
    rmse: float = float("nan")
    correlation: float = float("nan")


def _parse_keeps(text: str) -> list[int]:
    return parse_int_list(text, minimum=0)


def _parse_margins(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers >= 0; received {text!r}") from None
    if any(not (np.isfinite(v) and v >= 0) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers >= 0; received {text!r}")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``crossrank bench early-exit``."""
    parser = subparsers.add_parser(
        "early-exit", help="nDCG@10, operations and time of an early-exit cascade on the default model's layers"
    )
    parser.add_argument("--data", default="../shared/data/scifact,../shared/data/cranfield",
                        help="comma-separated BEIR folders whose test split is reranked")
    parser.add_argument("--train-data", default="../shared/data/scifact",
                        help="BEIR folder whose train split fits the exit head")
    parser.add_argument("--train-claims", type=int, default=48, help="seeded sample of train queries for the head")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train sample and of the cross-validation folds")
    parser.add_argument("--layer", type=int, default=6, help="layers before the exit (default 6 of 12)")
    parser.add_argument("--depth", type=int, default=25, help="BM25 candidates per query")
    parser.add_argument("--keep", type=_parse_keeps, default=[0, 10, 13, 15, 20],
                        help="comma-separated numbers of candidates continued (0: the head alone); default 0,10,13,15,20")
    parser.add_argument("--margins", type=_parse_margins, default=[1.0, 2.0, 4.0],
                        help="comma-separated margins (logits) below the 10th best prediction within which "
                             "candidates continue; default 1,2,4")
    parser.add_argument("--timed-queries", type=int, default=8, help="queries of each data set timed")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (interleaved)")
    parser.add_argument("--check-pairs", type=int, default=48,
                        help="pairs on which part A + part B is checked against the full graph")
    parser.add_argument("--cache-dir", default=None, help="score cache (default: crossrank eval's)")
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--section", default=None, help="section name (default: early-exit-layer<L>)")
    parser.set_defaults(handler=lambda args: run_early_exit(args))


def run_early_exit(args: argparse.Namespace, *, log: Callable[[str], None] | None = None) -> int:
    """Fit the exit head, measure every setting on every data set, write the section; return 0."""
    from crossrank import Reranker
    from crossrank.config import RerankerConfig

    if log is None:
        def log(line: str) -> None:
            sys.stderr.write(line + "\n")

    top = 10
    for name, value, least in (("--train-claims", args.train_claims, 2), ("--depth", args.depth, 1),
                               ("--timed-queries", args.timed_queries, 1), ("--repeats", args.repeats, 1),
                               ("--check-pairs", args.check_pairs, 1)):
        if value < least:
            raise InvalidInputError(f"{name} must be >= {least}; received {value}")
    too_deep = [k for k in args.keep if k > args.depth]
    if too_deep:
        raise InvalidInputError(f"--keep values must be at most --depth {args.depth}; received {too_deep}")
    settings = [Setting(keep=k) for k in dict.fromkeys(args.keep)] + [Setting(margin=m) for m in dict.fromkeys(args.margins)]
    datasets = [d.strip() for d in args.data.split(",") if d.strip()]
    if not datasets:
        raise InvalidInputError("--data: expected at least one BEIR folder")

    reranker = Reranker.from_config(RerankerConfig(max_length=192)).warm_up()
    sessions = SplitSessions(reranker, args.layer)
    try:
        layer, layers = sessions.layer, sessions.layers
        log(f"graph {sessions.path} cut after layer {layer} of {layers}; boundary {list(sessions.split.boundary)}")
        train = _scored(args.train_data, "train", args.depth, reranker, args.cache_dir,
                        sample=args.train_claims, seed=args.seed)
        train_candidates, train_full = _arrays(train)
        train_states = _cls_states(sessions, train, train_candidates, log)
        head = fit_ridge(
            np.concatenate([train_states[q] for q in train_candidates]),
            np.concatenate([train_full[q] for q in train_candidates]),
            [q for q, docs in train_candidates.items() for _ in docs], seed=args.seed,
        )
        log(f"head: alpha {head.alpha:g}, cross-validated RMSE {head.cv_rmse:.3f} on {head.pairs} train pairs")
        runs: list[_DatasetRun] = []
        check: dict[str, float] | None = None
        in_run: list[tuple[float, int]] = []
        for data in datasets:
            scored = _scored(data, "test", args.depth, reranker, args.cache_dir)
            candidates, full = _arrays(scored)
            if check is None:
                check = _check_reproduction(sessions, scored, candidates, full, args.check_pairs)
                log(f"split check: max |difference| {check['vs_full_graph']:.2g} vs the full graph, "
                    f"{check['vs_engine']:.2g} vs the engine")
            states = _cls_states(sessions, scored, candidates, log)
            predicted = {q: head.predict(states[q]) for q in candidates}
            results = evaluate_settings(scored.judgments(), candidates, predicted, full, settings,
                                        layer=layer, layers=layers, top=top)
            workload = _workload(scored, candidates, args.timed_queries)
            timings, worst, count = _time_settings(sessions, reranker, head, workload, full, settings,
                                                   repeats=args.repeats, top=top, log=log)
            in_run.append((worst, count))
            for row in results[1:]:
                row.ms = timings[row.label]
            all_predicted = np.concatenate([predicted[q] for q in candidates])
            all_full = np.concatenate([full[q] for q in candidates])
            runs.append(_DatasetRun(
                name=Path(data).name, queries=len(candidates), pairs=int(sum(len(v) for v in candidates.values())),
                results=results, timed_queries=len(workload.queries),
                engine_ms=timings["full model (engine)"], harness_ms=timings["full graph (this harness)"],
                rmse=float(np.sqrt(np.mean((all_predicted - all_full) ** 2))),
                correlation=float(np.corrcoef(all_predicted, all_full)[0, 1]),
            ))
            log(f"{Path(data).name}: full {results[0].mean:.4f}; "
                + ", ".join(f"{r.label} {r.mean:.4f}" for r in results[1:]))
    finally:
        sessions.close()
        reranker.close()
    assert check is not None
    worst = max((w for w, c in in_run if c), default=0.0)
    if worst > REPRODUCTION_TOLERANCE:
        raise ModelIntegrityError(f"part B's logits differ from the engine's by up to {worst:.3g} in the timed runs")
    body = _report(args, runs, head, check, in_run, layer=layer, layers=layers, top=top)
    write_section(args.section or f"early-exit-layer{layer}", body, path=args.output)
    sys.stdout.write(body + "\n")
    return 0


def _ms(values: Sequence[float]) -> str:
    middle, low, high = median_min_max(values)
    return f"{middle:.0f} ({low:.0f}–{high:.0f})"


def _report(args: argparse.Namespace, runs: Sequence[_DatasetRun], head: RidgeHead, check: Mapping[str, float],
            in_run: Sequence[tuple[float, int]], *, layer: int, layers: int, top: int) -> str:
    rows: list[str] = []
    for run in runs:
        engine = median_min_max(run.engine_ms)[0]
        for result in run.results:
            if result.p_value is None:
                ms = _ms(run.engine_ms) + f"; harness {_ms(run.harness_ms)}"
                rows.append(
                    f"| {run.name} | {result.label} | {result.kept:.1f} | 1.000 | {result.mean:.4f} | – | – | 1.00 | "
                    f"{ms} | 1.00x |"
                )
                continue
            speed = engine / median_min_max(result.ms)[0]
            rows.append(
                f"| {run.name} | {result.label} | {result.kept:.1f} | {result.share:.3f} | {result.mean:.4f} | "
                f"{result.difference:+.4f} | {result.p_value:.4f} | {result.overlap:.2f} | {_ms(result.ms)} | {speed:.2f}x |"
            )
    labels = [r.label for r in runs[0].results[1:]]
    passing = [
        label for label in labels
        if all(not r.significantly_below and r.share < 1.0 for run in runs for r in run.results if r.label == label)
    ]
    share = {label: max(r.share for run in runs for r in run.results if r.label == label) for label in labels}
    names = " and ".join(run.name for run in runs)

    def details(label: str) -> str:
        parts = []
        for run in runs:
            row = next(r for r in run.results if r.label == label)
            speed = median_min_max(run.engine_ms)[0] / median_min_max(row.ms)[0]
            parts.append(f"{run.name} Δ {row.difference:+.4f} (p {row.p_value:.3f}), {speed:.2f}x")
        return f"{label}: operation share up to {share[label]:.3f}; " + ", ".join(parts)

    if passing:
        cheapest = min(passing, key=lambda label: share[label])
        verdict = (
            f"**Verdict: yes.** Settings that spend fewer layer computations than the full model with nDCG@{top} not "
            f"significantly below it (paired bootstrap p >= 0.05, or not lower) on {names}: "
            + "; ".join(details(label) for label in passing)
            + f". The cheapest is {cheapest}. Not significantly below is not the same as equal: the Δ column is the "
            "measured loss."
        )
    else:
        verdict = (
            f"**Verdict: no.** Every setting that spends fewer layer computations than the full model is significantly "
            f"below it in nDCG@{top} (paired bootstrap p < 0.05) on at least one of {names}."
        )
    worst = max((w for w, c in in_run if c), default=float("nan"))
    counted = sum(c for _, c in in_run)
    per_data = "; ".join(
        f"{run.name}: {run.queries} queries, {run.pairs:,} pairs, RMSE {run.rmse:.2f}, Pearson r {run.correlation:.3f}"
        for run in runs
    )
    lines = [
        f"## Early exit after layer {layer} of {layers} (default model, BM25 top {args.depth}, max_length 192)",
        "",
        f"The embedded default's int8 graph as the engine runs it (per-tensor activation scales, each pair alone and "
        f"unpadded, the engine's own pair encoding at its defaults: max_length 192, sentence selection) is cut with "
        f"`onnx.utils.Extractor` into part A (embeddings and layers 0–{layer - 1}; outputs the hidden state after layer "
        f"{layer - 1} and the extended attention mask) and part B (layers {layer}–{layers - 1}, pooler and classifier). "
        f"Part A then part B reproduce the full graph: max |logit difference| {check['vs_full_graph']:.2g} against the full "
        f"graph and {check['vs_engine']:.2g} against the engine's logits on {int(check['pairs'])} test pairs spread over the "
        f"first data set, and {worst:.2g} against the engine over the {counted:,} continued candidates of the timed runs.",
        "",
        f"Exit head: ridge regression (closed form, numpy) on part A's [CLS] hidden state ({head.weights.shape[0]} "
        f"standardized features) predicting the full model's logit, fitted on {head.pairs:,} pairs: the BM25 top "
        f"{args.depth} of {head.groups} {Path(args.train_data).name} *train* queries (seeded sample, seed {args.seed}); "
        f"penalty {head.alpha:g} chosen by 5-fold cross-validation grouped by query (held-out RMSE {head.cv_rmse:.2f} "
        f"logits). No test query was used. On the test candidates: {per_data}.",
        "",
        f"Cascade: part A on every candidate; the head's prediction ranks them; the candidates kept (the N best "
        f"predictions, or every candidate within the margin, in logits, of the {top}th best prediction) continue "
        f"through part B and are ordered by the full model's logit above the exited ones, which keep their predicted "
        f"order. nDCG@{top}: every judged test query, against the full model on the same candidates (Δ, paired bootstrap "
        f"p, 10,000 samples). Full-model logits come from crossrank eval's score cache (the engine's own scores, equal "
        f"to part B's as checked above). Kept: candidates through part B per query (mean). Operation share: layer "
        f"computations over the full model's, (L·n + ({layers}−L)·kept) / ({layers}·n) with L = {layer} (the head's "
        f"{head.weights.shape[0]}-term dot product is not counted; neither is row length). Overlap: share of the "
        f"full model's top {top} in the setting's top {top}. ms/query: wall time per query including tokenization, "
        f"the first {runs[0].timed_queries} queries of each data set, median (min–max) of {args.repeats} repeats in one "
        f"process, interleaved (order rotating) with the full model through the engine (`Reranker.score`) and through "
        f"this harness (the whole graph in the same sessions setup); speed-up is against the engine.",
        "",
        f"| data | setting | kept | operation share | nDCG@{top} | Δ vs full | p vs full | overlap | ms/query | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        verdict,
    ]
    return "\n".join(lines)
