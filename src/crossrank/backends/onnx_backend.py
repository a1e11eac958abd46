"""ONNX Runtime backend: the default, light and fast on CPU."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.backends.base import logits_to_scores
from crossrank.errors import BackendUnavailableError, ConfigurationError, ModelIntegrityError
from crossrank.models.config import ModelConfig

__all__ = ["OnnxBackend"]

logger = logging.getLogger(__name__)

_OPTION_KEYS = {
    "num_threads",
    "inter_op_num_threads",
    "session_options",
    "providers",
    "graph_optimization_level",
    "activation_quantization",
    "concurrent_calls",
}
ACTIVATION_QUANTIZATION = ("auto", "per-token", "per-tensor")


class OnnxBackend:
    """Scores pairs with an ONNX Runtime ``InferenceSession``.

    Options (``Reranker(backend_options=...)``): ``num_threads`` (intra-op threads),
    ``inter_op_num_threads``, ``session_options`` (a mapping of ``SessionOptions`` attributes),
    ``providers`` (explicit provider list), ``graph_optimization_level`` (``"all"``,
    ``"extended"``, ``"basic"``, ``"disable"``), ``activation_quantization`` and
    ``concurrent_calls`` (see below).

    ``activation_quantization`` (default ``"auto"``): ``"per-tensor"`` runs a dynamically
    quantized graph with its own per-tensor activation scales (for the embedded model: the
    shipped graph, recorded with its hash as ``extra["original_graph"]``), which ONNX Runtime
    fuses into its integer matrix products. One scale per tensor would make a row's score depend
    on the other rows of its batch, so the backend reports ``batch_invariant = False`` and the
    engine scores each pair alone and unpadded: its score depends on nothing but the pair.
    ``"per-token"`` rewrites the graph to one scale per token (see :mod:`crossrank.quantization`),
    which is batch-invariant, so pairs are batched by token budget. ``"auto"`` picks per-tensor
    where the folder records an original graph (faster on CPU, see BENCHMARKS.md) and per-token
    otherwise.

    ``concurrent_calls`` (default ``"auto"``): how many model calls the engine runs at once.
    When pairs are scored alone on the CPU, ``"auto"`` is one call per usable core, each on one
    intra-op thread (a single row is too small a product to split across threads well); with
    batches, on a GPU, or when ``num_threads`` is given, it is 1.

    Example:
        >>> from crossrank import Reranker
        >>> batched = Reranker(backend="onnx", backend_options={"activation_quantization": "per-token"})
    """

    name = "onnx"

    def __init__(self, model_dir: Path, config: ModelConfig, device: str = "cpu", options: Mapping[str, Any] | None = None) -> None:
        import onnxruntime as ort

        options = dict(options or {})
        unknown = set(options) - _OPTION_KEYS
        if unknown:
            raise ConfigurationError(f"unknown onnx backend options {sorted(unknown)}; expected some of {sorted(_OPTION_KEYS)}")
        if config.onnx_file is None:
            raise BackendUnavailableError(f"model {config.name} has no ONNX graph; use backend='torch'")
        path = Path(model_dir) / config.onnx_file
        if not path.is_file():
            raise ModelIntegrityError(f"ONNX model file {path} is missing")
        config.verify(model_dir, only=(config.onnx_file,))
        session_options = ort.SessionOptions()
        levels = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }
        level = options.get("graph_optimization_level", "all")
        if level not in levels:
            raise ConfigurationError(f"graph_optimization_level must be one of {sorted(levels)}; received {level!r}")
        session_options.graph_optimization_level = levels[level]
        if options.get("inter_op_num_threads") is not None:
            session_options.inter_op_num_threads = _positive_int(options["inter_op_num_threads"], "inter_op_num_threads")
        for key, value in dict(options.get("session_options") or {}).items():
            if not hasattr(session_options, key):
                raise ConfigurationError(f"onnxruntime.SessionOptions has no attribute {key!r}")
            setattr(session_options, key, value)
        providers = options.get("providers") or _providers_for(device, ort.get_available_providers())
        activation = options.get("activation_quantization", "auto")
        if activation not in ACTIVATION_QUANTIZATION:
            raise ConfigurationError(f"activation_quantization must be one of {ACTIVATION_QUANTIZATION}; received {activation!r}")
        if activation == "auto":
            activation = "per-tensor" if _records_original_graph(config) else "per-token"

        self.batch_invariant = True
        self.quantization = config.quantization
        model_source: str | bytes = str(path)
        if activation == "per-tensor":
            model_source, self.quantization = _per_tensor_graph(model_dir, config, path)
        elif config.quantization in ("none", "dynamic-int8"):
            model_source, self.quantization = _prepare_graph(path, config.quantization)
        disabled: list[str] = []
        if self.quantization == "per-token-int8":
            from crossrank.quantization import PER_TOKEN_DISABLED_OPTIMIZERS

            disabled = list(PER_TOKEN_DISABLED_OPTIMIZERS)
        elif self.quantization == "dynamic-int8":
            self.batch_invariant = False
        self.concurrent_calls = _concurrent_calls(options, providers, rows_alone=not self.batch_invariant)
        if options.get("num_threads") is not None:
            session_options.intra_op_num_threads = _positive_int(options["num_threads"], "num_threads")
        elif self.concurrent_calls > 1:
            session_options.intra_op_num_threads = max(1, usable_cores() // self.concurrent_calls)
        try:
            self.session = ort.InferenceSession(
                model_source, session_options, providers=providers, disabled_optimizers=disabled
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt graphs
            raise ModelIntegrityError(f"cannot load ONNX model {path}: {exc}") from None
        self._input_names = {i.name for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._input_names
        if missing:
            raise ModelIntegrityError(f"ONNX model {path} lacks inputs {sorted(missing)}; has {sorted(self._input_names)}")
        unfed = self._input_names - {"input_ids", "attention_mask", "token_type_ids"}
        if unfed:
            # Inputs are bound by name; a graph that also wants position ids or a key/value cache
            # was exported for another use (``crossrank export`` writes graphs that need none).
            raise ModelIntegrityError(
                f"ONNX model {path} takes inputs crossrank does not feed: {sorted(unfed)}; expected input_ids, "
                "attention_mask and optionally token_type_ids (re-export it with 'crossrank export')"
            )
        self.providers = self.session.get_providers()

    def score(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = token_type_ids
        outputs = self.session.run(None, feeds)
        return logits_to_scores(outputs[0])

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _concurrent_calls(options: Mapping[str, Any], providers: list[Any], *, rows_alone: bool) -> int:
    """How many model calls the engine may run at once on this session."""
    value = options.get("concurrent_calls", "auto")
    if value != "auto":
        return _positive_int(value, "concurrent_calls")
    on_cpu = all((p[0] if isinstance(p, tuple) else p) == "CPUExecutionProvider" for p in providers)
    if not on_cpu or not rows_alone or options.get("num_threads") is not None:
        return 1
    # A single unpadded row is too small a matrix product to split well across threads;
    # one call per core on different rows keeps every core busy instead.
    return usable_cores()


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive int; received {value!r}")
    return value


def _providers_for(device: str, available: list[str]) -> list[str]:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise BackendUnavailableError(
                f"device={device!r} needs onnxruntime-gpu (CUDAExecutionProvider); available providers: {available}. "
                "Use backend='torch' or install onnxruntime-gpu."
            )
        device_id = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]  # type: ignore[list-item]
    raise ConfigurationError(f"device must be 'cpu', 'cuda' or 'cuda:N'; received {device!r}")


def _records_original_graph(config: ModelConfig) -> bool:
    original = config.extra.get("original_graph")
    return config.quantization == "per-token-int8" and isinstance(original, str) and original in config.files


def _per_tensor_graph(model_dir: Path, config: ModelConfig, path: Path) -> tuple[str, str]:
    """The graph with its per-tensor dynamic quantization, and its kind."""
    from crossrank.quantization import has_dynamic_quantization

    if config.quantization == "per-token-int8":
        original = config.extra.get("original_graph")
        if not _records_original_graph(config):
            # Only a graph whose sha256 is recorded (and so inside the folder) may be loaded.
            raise ConfigurationError(
                f"activation_quantization='per-tensor': model {config.name} holds a per-token graph and records no "
                f"hash-pinned original graph (crossrank.json extra.original_graph listed in files); received {original!r}"
            )
        path = Path(model_dir) / str(original)
        config.verify(model_dir, only=(original,))
        # The per-token graph was rewritten from this one because it had dynamic quantization.
        return str(path), "dynamic-int8"
    if config.quantization == "dynamic-int8" and config.onnx_file in config.files:
        # Declared by its crossrank.json and pinned by the hash verified at load: parsing the graph
        # (and importing onnx, most of a cold start) would only confirm it.
        return str(path), "dynamic-int8"
    return str(path), ("dynamic-int8" if has_dynamic_quantization(_load_graph(path)) else "none")


def _load_graph(path: Path) -> object:
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf decode errors are untyped
        raise ModelIntegrityError(f"cannot parse ONNX model {path}: {exc}") from None


def _prepare_graph(path: Path, declared: str) -> tuple[str | bytes, str]:
    """Rewrite dynamic quantization per token when the graph has it; return source and kind."""
    from crossrank.quantization import PerTokenRewriteError, has_dynamic_quantization, rewrite_per_token

    model = _load_graph(path)
    if not has_dynamic_quantization(model):
        return str(path), "none"
    try:
        rewritten = rewrite_per_token(model)
    except PerTokenRewriteError as exc:
        logger.warning("%s: dynamic quantization kept per tensor (%s); scoring pairs one at a time", path, exc)
        return str(path), "dynamic-int8"
    return rewritten.SerializeToString(), "per-token-int8"  # type: ignore[attr-defined]
