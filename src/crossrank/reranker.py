"""The reranking engine."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossrank.backends.base import BackendSpec, BatchTooLargeError, ScoringBackend
from crossrank.batching import pad_batch, plan_batches
from crossrank.calibration import CALIBRATION_FILENAME, Calibration, load_calibration, packaged_calibration
from crossrank.documents import normalize_documents, validate_probability, validate_query, validate_top_k
from crossrank.encoding import LONG_DOCUMENT_MODES, POOLING_MODES, PairEncoder
from crossrank.errors import (
    BackendUnavailableError,
    ConfigurationError,
    InvalidInputError,
    InvalidInputTypeError,
    describe,
)
from crossrank.fallback import (
    PrimaryTimeoutError,
    ScoringFunction,
    callable_reference,
    rank_callable_scores,
    run_with_deadline,
)
from crossrank.fusion import SCORE_TYPES, fuse_scores, validate_first_stage_weight
from crossrank.models.config import ModelConfig
from crossrank.quantization import activation_setting
from crossrank.results import BatchShape, RerankResult, RerankStats, ScoredDocument
from crossrank.score_cache import ScoreCache, cache_from_spec, pair_key, scope_digest
from crossrank.settings import UNSET, resolve_settings

if TYPE_CHECKING:
    import pluggy

__all__ = ["Reranker", "Threshold"]

logger = logging.getLogger("crossrank")

Threshold = float | str | bool | None
"""A probability in [0, 1], ``"calibrated"`` for the model's fitted rule, or ``None``/``False`` for none."""


# One "not given" marker for constructor and per-call options, shared with crossrank.settings.
_UNSET: Any = UNSET

# Documents tokenized per slice: large enough for parallel tokenization, small enough that the
# tokenizer's per-document objects stay a few megabytes whatever the number of documents.
_ENCODE_CHUNK = 256


@dataclass
class _Scored:
    logits: np.ndarray
    stats: RerankStats


@dataclass
class _Request:
    query: str
    texts: list[str]
    metadata: list[dict[str, Any]]
    documents: Sequence[Any]
    first_stage: np.ndarray | None = None


def _first_stage_scores(scores: object, documents: int, position: int) -> np.ndarray | None:
    """One request's retriever scores as a float array, checked against its document count."""
    if scores is None:
        return None
    if isinstance(scores, (str, bytes, Mapping)) or not isinstance(scores, (Sequence, np.ndarray)):
        raise InvalidInputTypeError(
            f"first_stage_scores of request {position} must be a list of numbers, one per document; received {describe(scores)}"
        )
    values = []
    for index, value in enumerate(scores):
        if isinstance(value, bool) or not isinstance(value, SCORE_TYPES):
            raise InvalidInputTypeError(
                f"first_stage_scores of request {position}: document {index} must have a number; received {describe(value)}"
            )
        if not math.isfinite(float(value)):
            raise InvalidInputError(
                f"first_stage_scores of request {position}: document {index} must have a finite number; received {value!r}"
            )
        values.append(float(value))
    if len(values) != documents:
        raise InvalidInputError(
            f"first_stage_scores of request {position} must hold one score per document: expected {documents}, received {len(values)}"
        )
    return np.asarray(values, dtype=np.float64)


StatsHook = Callable[[RerankStats], None]
"""Called with the :class:`~crossrank.RerankStats` of every query a reranker serves."""


class Reranker:
    """Reranks passages for a query with a cross-encoder and calibrated scores.

    The constructor only validates; the model loads on first use or on :meth:`warm_up`.

    Args:
        model: Local folder, Hugging Face id, or registered name. Defaults to the embedded
            ``cross-encoder/ms-marco-MiniLM-L-12-v2`` (int8 ONNX).
        backend: ``"auto"`` (ONNX when the model has a graph), ``"onnx"``, ``"torch"`` or any
            registered plugin backend.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        max_length: Tokens per model input; defaults to the model's limit.
        max_query_length: Tokens kept from the query (default: half of ``max_length``).
        batch_size: Most rows per model call.
        token_budget: Most padded tokens per model call (rows x longest row); bounds memory.
            Attention memory grows with rows x length², so the default (1024: two rows at 512
            tokens, eight at 128) keeps the ONNX path under 300 MB; on CPU larger batches
            barely raise throughput. Raise it for GPUs.
        long_documents: What to do with a pair longer than ``max_length``: ``"select"``
            (default: keep the document's sentences most related to the query, in their
            original order), ``"truncate"`` (keep the head) or ``"window"`` (overlapping
            windows, pooled). On SciFact test, selection at 256 tokens raised nDCG@10 from
            0.678 (truncate) to 0.694 (BENCHMARKS.md).
        window_overlap: Tokens shared by consecutive windows (default: a quarter of the
            document budget, at most 64).
        window_pooling: ``"max"`` or ``"mean"`` of the window logits.
        max_windows: Most windows per document; text beyond is ignored and counted.
        threshold: Default threshold for :meth:`rerank` (probability, ``"calibrated"`` or None).
        top_k: Default number of documents to return (None: all that pass the threshold).
        first_stage_weight: How much the retriever's own scores count in the final order, in
            [0, 1]. With ``w > 0`` the documents that pass the threshold are ordered by
            ``(1 - w) * z(logit) + w * z(first-stage score)`` (per-query z-scores, see
            :mod:`crossrank.fusion`), and every call must pass ``first_stage_scores``. Scores,
            thresholds and abstention stay the reranker's own; a callable fallback orders by
            its own scores. Default 0: the reranker alone. On SciFact's BM25 top 100, 0.3
            (chosen on train claims) raised the embedded model's nDCG@10 from 0.677 to 0.709.
        calibration: A :class:`~crossrank.calibration.Calibration` or path to its JSON;
            default: the model folder's ``calibration.json``, else a plain sigmoid.
        backend_options: Backend-specific options (e.g. ``{"num_threads": 2}``).
        allow_download: Whether a missing model may be fetched from a registered source.
        plugin_manager: A custom plugin manager (default: the process-wide one).
        show_progress: Show a progress bar on stderr for long inputs (off when not a TTY).
        disabled: Switch reranking off: :meth:`rerank` returns the documents untouched, in
            input order (``top_k`` still applies, scores are NaN, ``served_by="disabled"``).
        fallback: Served when this reranker fails, runs past ``primary_timeout`` or is less
            confident than ``min_confidence``: another :class:`Reranker`, a model name (built
            as one), or a callable ``(query, texts) -> probabilities``. See
            :mod:`crossrank.fallback`.
        primary_timeout: Seconds this reranker may take before the fallback serves.
        min_confidence: When the best calibrated score of a query is below this, the
            fallback serves that query.
        cache: A :class:`~crossrank.score_cache.ScoreCache`, ``"memory"``, ``"memory:N"``,
            an SQLite file path, or True (in-memory): pairs scored before are not scored again.
        on_stats: Called with each query's :class:`~crossrank.RerankStats` (for metrics).
        config_file: A TOML/YAML file of options (default: ``$CROSSRANK_CONFIG``, if set).
        domain: Use the model registered for this domain (``crossrank train --domain``);
            when the domain has none, ``model`` is used and a log line says so.

    Every option left out is read from the environment (``CROSSRANK_<OPTION>``), then from the
    configuration file, then takes the default shown in :mod:`crossrank.settings`: explicit
    argument > environment > file > default. ``setting_sources`` records where each came from.

    Example:
        >>> from crossrank import Reranker
        >>> reranker = Reranker()  # cheap: nothing is loaded yet
        >>> result = reranker.rerank(  # doctest: +SKIP
        ...     "How many people live in Berlin?",
        ...     ["Berlin has about 3.7 million inhabitants.", "Berlin is known for its museums."],
        ... )
        >>> result[0].index  # doctest: +SKIP
        0
    """

    def __init__(
        self,
        model: str | Path = _UNSET,
        *,
        backend: str = _UNSET,
        device: str = _UNSET,
        max_length: int | None = _UNSET,
        max_query_length: int | None = _UNSET,
        batch_size: int = _UNSET,
        token_budget: int = _UNSET,
        long_documents: str = _UNSET,
        window_overlap: int | None = _UNSET,
        window_pooling: str = _UNSET,
        max_windows: int = _UNSET,
        threshold: Threshold = _UNSET,
        top_k: int | None = _UNSET,
        first_stage_weight: float = _UNSET,
        calibration: Calibration | str | Path | None = _UNSET,
        backend_options: Mapping[str, Any] | None = _UNSET,
        allow_download: bool = _UNSET,
        plugin_manager: pluggy.PluginManager | None = None,
        show_progress: bool = _UNSET,
        disabled: bool = _UNSET,
        fallback: Reranker | ScoringFunction | str | None = _UNSET,
        primary_timeout: float | None = _UNSET,
        min_confidence: float | None = _UNSET,
        cache: ScoreCache | str | bool | None = _UNSET,
        on_stats: StatsHook | None = None,
        config_file: str | Path | None = None,
        domain: str | None = _UNSET,
    ) -> None:
        effective = resolve_settings(
            {
                "model": model,
                "backend": backend,
                "device": device,
                "max_length": max_length,
                "max_query_length": max_query_length,
                "batch_size": batch_size,
                "token_budget": token_budget,
                "long_documents": long_documents,
                "window_overlap": window_overlap,
                "window_pooling": window_pooling,
                "max_windows": max_windows,
                "threshold": threshold,
                "top_k": top_k,
                "first_stage_weight": first_stage_weight,
                "calibration": calibration,
                "backend_options": backend_options,
                "allow_download": allow_download,
                "show_progress": show_progress,
                "disabled": disabled,
                "fallback": fallback,
                "primary_timeout": primary_timeout,
                "min_confidence": min_confidence,
                "cache": cache,
                "domain": domain,
            },
            config_file=config_file,
        )
        values = effective.values
        model, backend, device = values["model"], values["backend"], values["device"]
        max_length, max_query_length = values["max_length"], values["max_query_length"]
        batch_size, token_budget = values["batch_size"], values["token_budget"]
        long_documents, window_overlap = values["long_documents"], values["window_overlap"]
        window_pooling, max_windows = values["window_pooling"], values["max_windows"]
        threshold, top_k, calibration = values["threshold"], values["top_k"], values["calibration"]
        backend_options, allow_download = values["backend_options"], values["allow_download"]
        show_progress, domain = values["show_progress"], values["domain"]
        if not isinstance(model, (str, Path)) or not str(model).strip():
            raise ConfigurationError(f"model must be a non-empty name or path; received {describe(model)}")
        if not isinstance(backend, str) or not backend:
            raise ConfigurationError(f"backend must be a backend name; received {describe(backend)}")
        if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda") or device.startswith("mps")):
            raise ConfigurationError(f"device must be 'cpu', 'cuda' or 'cuda:N'; received {describe(device)}")
        for name, value, minimum in (
            ("max_length", max_length, 8),
            ("max_query_length", max_query_length, 1),
            ("batch_size", batch_size, 1),
            ("token_budget", token_budget, 8),
            ("window_overlap", window_overlap, 0),
            ("max_windows", max_windows, 1),
        ):
            if value is None and name in ("max_length", "max_query_length", "window_overlap"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigurationError(f"{name} must be an int >= {minimum}; received {describe(value)}")
        if long_documents not in LONG_DOCUMENT_MODES:
            raise ConfigurationError(f"long_documents must be one of {LONG_DOCUMENT_MODES}; received {long_documents!r}")
        if window_pooling not in POOLING_MODES:
            raise ConfigurationError(f"window_pooling must be one of {POOLING_MODES}; received {window_pooling!r}")
        if calibration is not None and not isinstance(calibration, (Calibration, str, Path)):
            raise ConfigurationError(f"calibration must be a Calibration or a path; received {describe(calibration)}")
        self._check_threshold(threshold)
        validate_top_k(top_k)
        try:
            first_stage_weight = validate_first_stage_weight(values["first_stage_weight"])
        except (InvalidInputError, InvalidInputTypeError) as exc:
            raise ConfigurationError(str(exc)) from None
        for name in ("allow_download", "show_progress", "disabled"):
            if not isinstance(values[name], bool):
                raise ConfigurationError(f"{name} must be True or False; received {describe(values[name])}")
        primary_timeout = values["primary_timeout"]
        if primary_timeout is not None and (
            isinstance(primary_timeout, bool)
            or not isinstance(primary_timeout, (int, float))
            or not math.isfinite(primary_timeout)
            or primary_timeout <= 0
        ):
            raise ConfigurationError(f"primary_timeout must be a number of seconds > 0; received {describe(primary_timeout)}")
        min_confidence = values["min_confidence"]
        if min_confidence is not None:
            min_confidence = validate_probability(min_confidence, "min_confidence")
        if on_stats is not None and not callable(on_stats):
            raise ConfigurationError(f"on_stats must be a callable taking RerankStats; received {describe(on_stats)}")
        self.setting_sources: dict[str, str] = dict(effective.sources)
        self.config_file = effective.config_file
        self.disabled: bool = values["disabled"]
        self.primary_timeout: float | None = None if primary_timeout is None else float(primary_timeout)
        self.min_confidence: float | None = min_confidence
        self.cache: ScoreCache | None = cache_from_spec(values["cache"])
        self.on_stats = on_stats
        self._fallback_option = values["fallback"]
        self.fallback = self._build_fallback(
            values["fallback"],
            device=device,
            allow_download=allow_download,
            plugin_manager=plugin_manager,
            config_file=effective.config_file,
        )
        if self.fallback is None and (self.primary_timeout is not None or self.min_confidence is not None):
            raise ConfigurationError(
                "primary_timeout and min_confidence choose when the fallback serves; they need fallback= "
                f"(received primary_timeout={self.primary_timeout}, min_confidence={self.min_confidence})"
            )
        if threshold == "calibrated" and self.fallback is not None and not isinstance(self.fallback, Reranker):
            raise ConfigurationError(
                "threshold='calibrated' needs a calibrated model, and a callable fallback has none; "
                "pass a probability threshold or a Reranker fallback"
            )
        self.model = str(model)
        self.backend = backend
        self.device = device
        self.max_length = max_length
        self.max_query_length = max_query_length
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.long_documents = long_documents
        self.window_overlap = window_overlap
        self.window_pooling = window_pooling
        self.max_windows = max_windows
        self.threshold = threshold
        self.top_k = top_k
        self.first_stage_weight = first_stage_weight
        self._calibration_option = calibration
        self.backend_options = dict(backend_options or {})
        self.allow_download = allow_download
        self.show_progress = show_progress
        self._plugin_manager = plugin_manager
        if domain is not None:
            from crossrank.models.domains import validate_domain_name

            validate_domain_name(domain)
        self.domain = domain
        self._lock = threading.Lock()
        self._pool_executor: ThreadPoolExecutor | None = None
        self._loaded: tuple[ScoringBackend, PairEncoder, ModelConfig, Calibration, Path] | None = None
        self._cache_scope_value: str | None = None

    def _build_fallback(
        self,
        option: object,
        *,
        device: str,
        allow_download: bool,
        plugin_manager: pluggy.PluginManager | None,
        config_file: Path | None,
    ) -> Reranker | ScoringFunction | None:
        if option is None:
            return None
        if option is self:
            raise ConfigurationError("a reranker cannot be its own fallback")
        if isinstance(option, Reranker):
            return option
        if isinstance(option, (str, Path)):
            # Explicit values, so the environment's fallback settings cannot chain without end.
            return Reranker(
                option,
                device=device,
                allow_download=allow_download,
                plugin_manager=plugin_manager,
                disabled=False,
                fallback=None,
                primary_timeout=None,
                min_confidence=None,
                config_file=config_file,
            )
        if callable(option):
            return option  # type: ignore[return-value]
        raise ConfigurationError(
            "fallback must be a Reranker, a model name or a callable (query, texts) -> scores; "
            f"received {describe(option)}"
        )

    # ----------------------------------------------------------------- configuration
    def to_dict(self) -> dict[str, Any]:
        """The constructor options as plain JSON-compatible values."""
        calibration = self._calibration_option
        if isinstance(calibration, Calibration):
            calibration = {"inline": calibration.to_dict()}  # type: ignore[assignment]
        elif isinstance(calibration, Path):
            calibration = str(calibration)
        return {
            "model": self.model,
            "backend": self.backend,
            "device": self.device,
            "max_length": self.max_length,
            "max_query_length": self.max_query_length,
            "batch_size": self.batch_size,
            "token_budget": self.token_budget,
            "long_documents": self.long_documents,
            "window_overlap": self.window_overlap,
            "window_pooling": self.window_pooling,
            "max_windows": self.max_windows,
            "threshold": self.threshold,
            "top_k": self.top_k,
            "first_stage_weight": self.first_stage_weight,
            "calibration": calibration,
            "backend_options": dict(self.backend_options),
            "allow_download": self.allow_download,
            "show_progress": self.show_progress,
            "disabled": self.disabled,
            "fallback": self._fallback_to_dict(),
            "primary_timeout": self.primary_timeout,
            "min_confidence": self.min_confidence,
            "cache": self.cache.to_dict() if self.cache is not None else None,
            "domain": self.domain,
        }

    def _fallback_to_dict(self) -> Any:
        option = self._fallback_option
        if option is None or isinstance(option, (str, Path)):
            return None if option is None else str(option)
        if isinstance(option, Reranker):
            return {"reranker": option.to_dict()}
        # Code is never loaded from a configuration: from_dict needs the callable passed again.
        return {"callable": callable_reference(option)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **runtime: Any) -> Reranker:
        """Rebuild a reranker from :meth:`to_dict`.

        ``runtime`` supplies what JSON cannot hold: ``fallback`` (a callable fallback, which
        ``to_dict`` records only by name), ``on_stats``, ``plugin_manager`` or a ``cache`` object.
        """
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"Reranker.from_dict expects a mapping; received {describe(data)}")
        unknown_runtime = set(runtime) - {"fallback", "on_stats", "plugin_manager", "cache"}
        if unknown_runtime:
            raise ConfigurationError(
                f"from_dict takes only fallback, on_stats, plugin_manager and cache as objects; "
                f"received {sorted(unknown_runtime)}"
            )
        options = dict(data)
        calibration = options.get("calibration")
        if isinstance(calibration, Mapping):
            options["calibration"] = Calibration.from_dict(calibration["inline"])
        fallback = options.get("fallback")
        if isinstance(fallback, Mapping) and "fallback" not in runtime:
            if "reranker" in fallback:
                options["fallback"] = cls.from_dict(
                    fallback["reranker"],
                    **{k: v for k, v in runtime.items() if k == "plugin_manager"},
                )
            else:
                raise ConfigurationError(
                    f"this configuration's fallback is the callable {fallback.get('callable')!r}; "
                    "pass it again: Reranker.from_dict(data, fallback=function)"
                )
        options.update(runtime)
        try:
            return cls(**options)
        except TypeError as exc:
            raise ConfigurationError(f"invalid Reranker configuration: {exc}") from None

    # ----------------------------------------------------------------- loading
    def warm_up(self) -> Reranker:
        """Load the model now (otherwise it loads on first use). Returns ``self``."""
        self._load()
        return self

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    @property
    def model_config(self) -> ModelConfig:
        return self._load()[2]

    @property
    def model_path(self) -> Path:
        return self._load()[4]

    @property
    def quantization(self) -> str:
        """How the loaded graph quantizes: ``"per-token-int8"``, ``"dynamic-int8"`` (per tensor) or ``"none"``."""
        backend, _, config, _, _ = self._load()
        return str(getattr(backend, "quantization", config.quantization))

    @property
    def calibration(self) -> Calibration:
        return self._load()[3]

    @property
    def backend_name(self) -> str:
        return self._load()[0].name

    @property
    def model_id(self) -> str:
        """``name@revision``: identifies the scores this reranker produces."""
        config = self.model_config
        return f"{config.name}@{config.revision}"

    def _load(self) -> tuple[ScoringBackend, PairEncoder, ModelConfig, Calibration, Path]:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load_now()
            return self._loaded

    def _model_to_load(self) -> str:
        """The domain's registered model when there is one, else ``model``."""
        if self.domain is None:
            return self.model
        from crossrank.models.domains import domain_model_path

        path = domain_model_path(self.domain)
        if path is None:
            logger.info("domain %r has no registered model; using %s", self.domain, self.model)
            return self.model
        logger.debug("domain %r: using %s", self.domain, path)
        return str(path)

    def _load_now(self) -> tuple[ScoringBackend, PairEncoder, ModelConfig, Calibration, Path]:
        from crossrank.models.resolve import resolve_model
        from crossrank.plugins import backend_registry

        resolved = resolve_model(self._model_to_load(), plugin_manager=self._plugin_manager, allow_fetch=self.allow_download)
        config = resolved.config
        spec = self._choose_backend(backend_registry(self._plugin_manager), config)
        max_length = self.max_length or config.max_length
        if max_length > config.max_length:
            raise ConfigurationError(f"max_length={max_length} exceeds the model's limit of {config.max_length} tokens")
        if self.token_budget < max_length:
            raise ConfigurationError(
                f"token_budget={self.token_budget} must be at least max_length={max_length} so one full row fits"
            )
        encoder = PairEncoder.from_file(
            resolved.path / config.tokenizer_file,
            max_length=max_length,
            max_query_length=self.max_query_length,
            long_documents=self.long_documents,
            window_overlap=self.window_overlap,
            max_windows=self.max_windows,
        )
        backend = spec.build(resolved.path, config, self.device, self.backend_options)
        calibration = self._load_calibration(resolved.path)
        self._note_calibration_mismatch(calibration, backend, config, max_length)
        logger.debug(
            "loaded model %s (%s) from %s with backend %s", config.name, config.revision, resolved.path, spec.name
        )
        return backend, encoder, config, calibration, resolved.path

    def _choose_backend(self, registry: Mapping[str, BackendSpec], config: ModelConfig) -> BackendSpec:
        if self.backend != "auto":
            spec = registry.get(self.backend)
            if spec is None:
                raise BackendUnavailableError(f"unknown backend {self.backend!r}; registered: {sorted(registry)}")
            if not spec.is_available():
                raise BackendUnavailableError(f"backend {self.backend!r} is not installed: {spec.description}")
            if not spec.can_run(config):
                raise BackendUnavailableError(
                    f"backend {self.backend!r} cannot run model {config.name}: it needs {spec.needs_file} weights"
                )
            return spec
        candidates = sorted(registry.values(), key=lambda s: -s.priority)
        if self.device != "cpu":
            # ONNX Runtime on GPU needs onnxruntime-gpu; prefer a backend that really has the device.
            candidates.sort(key=lambda s: (s.name == "onnx" and not _ort_has_cuda(), -s.priority))
        for spec in candidates:
            if spec.is_available() and spec.can_run(config):
                return spec
        raise BackendUnavailableError(
            f"no installed backend can run model {config.name} (onnx file: {config.onnx_file}, "
            f"torch weights: {config.torch_weights}); registered: {sorted(registry)}"
        )

    def _load_calibration(self, model_path: Path) -> Calibration:
        option = self._calibration_option
        if isinstance(option, Calibration):
            return option
        if option is not None:
            return load_calibration(option)
        candidate = model_path / CALIBRATION_FILENAME
        if candidate.is_file():
            return load_calibration(candidate)
        packaged = packaged_calibration(self._load_config_only(model_path))
        if packaged is not None:
            return load_calibration(packaged)
        return Calibration()

    def _note_calibration_mismatch(self, calibration: Calibration, backend: ScoringBackend, config: ModelConfig, max_length: int) -> None:
        """Log when the calibration was fitted on scores produced differently from this reranker's."""
        fitted = calibration.provenance.get("scorer")
        if not isinstance(fitted, Mapping):
            return
        current = {
            "max_length": max_length,
            "long_documents": self.long_documents,
            "activation_quantization": activation_setting(config.quantization, getattr(backend, "quantization", config.quantization)),
        }
        if "int8_kernels" in fitted:
            # Recorded only for graphs whose int8 scores depend on the CPU; compared only where recorded.
            from crossrank.quantization import int8_instruction_set

            current["int8_kernels"] = int8_instruction_set()
        differs = {key: (fitted.get(key), value) for key, value in current.items() if fitted.get(key) != value}
        if differs:
            logger.info(
                "calibration of %s was fitted on scores from other settings (fitted, now): %s; its probabilities are approximate",
                config.name,
                differs,
            )

    @staticmethod
    def _load_config_only(model_path: Path) -> ModelConfig:
        return ModelConfig.load(model_path)

    def close(self) -> None:
        """Release the model; the next call loads it again."""
        with self._lock:
            if self._loaded is not None:
                self._loaded[0].close()
            self._loaded = None
            if self._pool_executor is not None:
                self._pool_executor.shutdown(wait=True)
                self._pool_executor = None
            self._cache_scope_value = None

    # ----------------------------------------------------------------- scoring
    @staticmethod
    def _check_threshold(threshold: object) -> None:
        if threshold is None or threshold is False or threshold == "calibrated":
            return
        validate_probability(threshold, "threshold")

    def _score_pairs(self, queries: list[str], texts: list[str], query_of_pair: list[int]) -> _Scored:
        backend, encoder, config, _calibration, _ = self._load()
        stats = RerankStats(documents=len(texts), backend=backend.name, model=f"{config.name}@{config.revision}")
        if not texts:
            return _Scored(np.zeros(0, dtype=np.float64), stats)
        logits = np.empty(len(texts), dtype=np.float64)
        truncated_queries: set[int] = set()
        progress = None
        if self.show_progress and len(texts) > 64:
            from tqdm import tqdm

            progress = tqdm(total=len(texts), unit="pair", desc="reranking", disable=None, leave=False)
        try:
            # Encode and score a slice of documents at a time: tokenizing every document up front
            # would make memory grow with the number of documents instead of staying bounded by
            # the token budget. Scores are batch-invariant, so slicing does not change them.
            for start in range(0, len(texts), _ENCODE_CHUNK):
                end = min(start + _ENCODE_CHUNK, len(texts))
                started = time.perf_counter()
                segments, report = encoder.encode(queries, texts[start:end], query_of_pair[start:end])
                stats.truncated_documents += report.truncated_documents
                stats.windowed_documents += report.windowed_documents
                stats.windows += report.windows
                truncated_queries |= report.truncated_query_indices
                stats.truncated_queries = len(truncated_queries)
                stats.pairs_scored += len(segments)
                encoded = time.perf_counter()
                lengths = [len(s.input_ids) for s in segments]
                if backend.batch_invariant:
                    batches = plan_batches(lengths, batch_size=self.batch_size, token_budget=self.token_budget)
                else:
                    batches = [[i] for i in sorted(range(len(segments)), key=lambda i: -lengths[i])]
                row_logits = np.empty(len(segments), dtype=np.float64)
                shapes = self._run_batches(backend, encoder.pad_id, segments, batches, row_logits)
                stats.batches.extend(shapes)
                logits[start:end] = self._pool(row_logits, [s.pair for s in segments], end - start)
                del segments, row_logits
                if progress is not None:
                    progress.update(end - start)
                stats.tokenize_ms += (encoded - started) * 1000
                stats.model_ms += (time.perf_counter() - encoded) * 1000
        finally:
            if progress is not None:
                progress.close()
        return _Scored(logits, stats)

    def _run_batches(
        self, backend: ScoringBackend, pad_id: int, segments: list[Any], batches: list[list[int]], out: np.ndarray
    ) -> list[BatchShape]:
        """Score every batch into ``out``; the shapes of the model calls, in batch order."""
        calls = max(1, int(getattr(backend, "concurrent_calls", 1)))
        if calls == 1 or len(batches) == 1:
            return [shape for batch in batches for shape in self._run_batch(backend, pad_id, segments, batch, out)]
        # Each call runs on one core (the backend sized its threads for this), so calls on
        # separate batches use every core without the synchronisation cost of splitting one
        # small matrix product across threads. Rows are independent, so the scores are the same.
        executor = self._executor(calls)
        futures = [executor.submit(self._run_batch, backend, pad_id, segments, batch, out) for batch in batches]
        shapes: list[BatchShape] = []
        try:
            for future in futures:
                shapes.extend(future.result())
        finally:
            for future in futures:
                future.cancel()
        return shapes

    def _executor(self, workers: int) -> ThreadPoolExecutor:
        # One pool per loaded backend: close() drops it together with the backend.
        with self._lock:
            if self._pool_executor is None:
                self._pool_executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crossrank-score")
            return self._pool_executor

    def _run_batch(
        self, backend: ScoringBackend, pad_id: int, segments: list[Any], batch: list[int], out: np.ndarray
    ) -> list[BatchShape]:
        input_ids, attention, types = pad_batch([(segments[i].input_ids, segments[i].token_type_ids) for i in batch], pad_id)
        try:
            logits = backend.score(input_ids, attention, types)
        except BatchTooLargeError:
            if len(batch) == 1:
                raise
            half = len(batch) // 2
            logger.warning("batch of %d rows ran out of memory; retrying as two halves", len(batch))
            return self._run_batch(backend, pad_id, segments, batch[:half], out) + self._run_batch(
                backend, pad_id, segments, batch[half:], out
            )
        logits = np.asarray(logits, dtype=np.float64).reshape(-1)
        if logits.shape[0] != len(batch):
            raise BackendUnavailableError(
                f"backend {backend.name} returned {logits.shape[0]} scores for a batch of {len(batch)} rows"
            )
        out[batch] = logits
        return [BatchShape(rows=len(batch), length=int(input_ids.shape[1]))]

    def _pool(self, row_logits: np.ndarray, pair_of_row: list[int], pairs: int) -> np.ndarray:
        pooled = np.full(pairs, -np.inf if self.window_pooling == "max" else 0.0)
        counts = np.zeros(pairs)
        for logit, pair in zip(row_logits, pair_of_row):
            if self.window_pooling == "max":
                pooled[pair] = max(pooled[pair], logit)
            else:
                pooled[pair] += logit
            counts[pair] += 1
        if self.window_pooling == "mean":
            pooled /= counts
        # Non-finite logits would poison calibration and sorting; clamp them to the float range.
        return np.nan_to_num(pooled, nan=-1e4, posinf=1e4, neginf=-1e4)

    def score(self, pairs: Sequence[tuple[str, Any]], *, raw: bool = False) -> np.ndarray:
        """Score ``(query, document)`` pairs in one batched pass.

        Returns calibrated probabilities (or raw logits with ``raw=True``) in input order.

        Example:
            >>> Reranker().score([("capital of France", "Paris is the capital of France.")])  # doctest: +SKIP
            array([0.99...])
        """
        if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
            raise InvalidInputTypeError(f"pairs must be a list of (query, document) tuples; received {describe(pairs)}")
        query_index: dict[str, int] = {}
        queries: list[str] = []
        documents: list[Any] = []
        query_of_pair: list[int] = []
        for position, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InvalidInputTypeError(f"pair {position} must be a (query, document) tuple; received {describe(pair)}")
            query = validate_query(pair[0])
            if query not in query_index:
                query_index[query] = len(queries)
                queries.append(query)
            query_of_pair.append(query_index[query])
            documents.append(pair[1])
        texts, _ = normalize_documents(documents)
        if self.disabled:
            return np.full(len(texts), np.nan)
        logits = self._cached_logits(queries, texts, query_of_pair).logits
        if raw:
            return logits
        return self.calibration.calibrator.transform(logits) if len(logits) else logits

    def rerank(
        self,
        query: str,
        documents: Sequence[Any],
        *,
        top_k: int | None = _UNSET,
        threshold: Threshold = _UNSET,
        first_stage_scores: Sequence[float] | None = None,
    ) -> RerankResult:
        """Rank ``documents`` for ``query``, best first.

        Args:
            query: The question or search query.
            documents: Strings, :class:`~crossrank.Document` objects, mappings with a
                ``text`` key, or framework documents; none of them is modified.
            top_k: Keep at most this many (after the threshold). Defaults to the
                constructor's value.
            threshold: Keep only documents whose calibrated score is at least this
                probability; ``"calibrated"`` applies the model's fitted rule; ``None`` or
                ``False`` keeps everything. Defaults to the constructor's value.
            first_stage_scores: The retriever's score of each document, in the same order
                (any scale, higher is better). Needed when ``first_stage_weight`` is above 0,
                which then fuses them into the order; with weight 0 they do not change it.

        Returns:
            A :class:`~crossrank.RerankResult`; ``result.abstained`` is True when the
            threshold left nothing.
        """
        scores = None if first_stage_scores is None else [first_stage_scores]
        return self.score_many([(query, documents)], top_k=top_k, threshold=threshold, first_stage_scores=scores)[0]

    def score_many(
        self,
        requests: Sequence[tuple[str, Sequence[Any]]],
        *,
        top_k: int | None = _UNSET,
        threshold: Threshold = _UNSET,
        first_stage_scores: Sequence[Sequence[float] | None] | None = None,
    ) -> list[RerankResult]:
        """Rerank several queries' candidate lists in one batched pass (multi-query batching).

        ``first_stage_scores``, when given, holds one entry per request: that request's
        retriever scores (see :meth:`rerank`) or None.
        """
        started = time.perf_counter()
        if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence):
            raise InvalidInputTypeError(
                f"requests must be a list of (query, documents) tuples; received {describe(requests)}"
            )
        top_k = self.top_k if top_k is _UNSET else validate_top_k(top_k)
        threshold = self.threshold if threshold is _UNSET else threshold
        self._check_threshold(threshold)
        if threshold == "calibrated" and self.fallback is not None and not isinstance(self.fallback, Reranker):
            raise InvalidInputError("threshold='calibrated' cannot apply to a callable fallback; pass a probability")
        if first_stage_scores is not None:
            if isinstance(first_stage_scores, (str, bytes, Mapping)) or not isinstance(first_stage_scores, Sequence):
                raise InvalidInputTypeError(
                    f"first_stage_scores must be a list with one entry per request; received {describe(first_stage_scores)}"
                )
            if len(first_stage_scores) != len(requests):
                raise InvalidInputError(
                    f"first_stage_scores must have one entry per request: expected {len(requests)}, received {len(first_stage_scores)}"
                )
        parsed: list[_Request] = []
        for position, request in enumerate(requests):
            if not isinstance(request, (tuple, list)) or len(request) != 2:
                raise InvalidInputTypeError(
                    f"request {position} must be a (query, documents) tuple; received {describe(request)}"
                )
            query = validate_query(request[0])
            documents = request[1]
            if isinstance(documents, Iterator):
                documents = list(documents)  # a generator can be read once; the fallback may need it again
            texts, metadata = normalize_documents(documents)
            retrieved = _first_stage_scores(
                None if first_stage_scores is None else first_stage_scores[position], len(texts), position
            )
            if retrieved is None and self.first_stage_weight > 0.0 and not self.disabled:
                raise InvalidInputError(
                    f"first_stage_weight={self.first_stage_weight:g} fuses the retriever's scores into the order, so request "
                    f"{position} needs first_stage_scores (one per document); received none"
                )
            parsed.append(_Request(query, texts, metadata, documents, retrieved))
        if self.disabled:
            results = [self._pass_through(request, top_k) for request in parsed]
        elif self.fallback is None:
            results = self._score_primary(parsed, top_k, threshold)
        else:
            results = self._score_with_fallback(parsed, top_k, threshold)
        total_ms = (time.perf_counter() - started) * 1000
        for result in results:
            result.stats.total_ms = total_ms
            self._report(result.stats)
        return results

    def _score_primary(self, parsed: list[_Request], top_k: int | None, threshold: Threshold) -> list[RerankResult]:
        queries: list[str] = []
        all_texts: list[str] = []
        all_metadata: list[dict[str, Any]] = []
        query_of_pair: list[int] = []
        spans: list[tuple[int, int]] = []
        for request in parsed:
            spans.append((len(all_texts), len(all_texts) + len(request.texts)))
            query_of_pair.extend([len(queries)] * len(request.texts))
            queries.append(request.query)
            all_texts.extend(request.texts)
            all_metadata.extend(request.metadata)
        scored = self._cached_logits(queries, all_texts, query_of_pair) if all_texts else None
        results = []
        for q, (start, end) in enumerate(spans):
            logits = scored.logits[start:end] if scored is not None else np.zeros(0)
            started = time.perf_counter()
            stats = self._split_stats(scored.stats if scored is not None else None, end - start, len(all_texts))
            result = self._finish(
                queries[q], all_texts[start:end], all_metadata[start:end], logits, top_k, threshold, stats,
                first_stage=parsed[q].first_stage,
            )
            stats.post_ms = (time.perf_counter() - started) * 1000
            results.append(result)
        return results

    def _pass_through(self, request: _Request, top_k: int | None) -> RerankResult:
        kept = range(len(request.texts))[:top_k]
        documents = [
            ScoredDocument(
                index=i, text=request.texts[i], score=math.nan, raw_score=math.nan, metadata=request.metadata[i], rank=i + 1
            )
            for i in kept
        ]
        stats = RerankStats(documents=len(request.texts), served_by="disabled")
        return RerankResult(documents, query=request.query, threshold=None, stats=stats)

    def _score_with_fallback(
        self, parsed: list[_Request], top_k: int | None, threshold: Threshold
    ) -> list[RerankResult]:
        failure: BaseException | None = None
        try:
            if self.primary_timeout is None:
                results = self._score_primary(parsed, top_k, threshold)
            else:
                results = run_with_deadline(
                    lambda: self._score_primary(parsed, top_k, threshold), self.primary_timeout
                )
        except PrimaryTimeoutError as exc:
            failure, reason = exc, f"timeout: {exc}"
        except Exception as exc:  # any primary failure, a model that cannot load included
            failure, reason = exc, f"error: {type(exc).__name__}: {' '.join(str(exc).split())}"
        if failure is not None:
            logger.warning("primary reranker %s failed (%s); the fallback serves", self.model, reason)
            try:
                return self._serve_fallback(parsed, top_k, threshold, [reason] * len(parsed))
            except Exception as exc:
                raise exc from failure
        if self.min_confidence is not None:
            unsure = [
                i
                for i, result in enumerate(results)
                if result.stats.best_score is not None and result.stats.best_score < self.min_confidence
            ]
            if unsure:
                reasons = [
                    f"unsure: best score {results[i].stats.best_score:.4f} < min_confidence {self.min_confidence:g}"
                    for i in unsure
                ]
                served = self._serve_fallback([parsed[i] for i in unsure], top_k, threshold, reasons)
                for i, result in zip(unsure, served):
                    results[i] = result
        return results

    def _serve_fallback(
        self, parsed: list[_Request], top_k: int | None, threshold: Threshold, reasons: list[str]
    ) -> list[RerankResult]:
        fallback = self.fallback
        if isinstance(fallback, Reranker):
            scores = [None if r.first_stage is None else r.first_stage.tolist() for r in parsed]
            served = fallback.score_many(
                [(r.query, r.documents) for r in parsed], top_k=top_k, threshold=threshold,
                first_stage_scores=scores if any(v is not None for v in scores) else None,
            )
        else:
            assert fallback is not None
            cut = None if threshold is None or threshold is False else float(threshold)  # type: ignore[arg-type]
            served = []
            for request in parsed:
                started = time.perf_counter()
                stats = RerankStats(
                    documents=len(request.texts), backend="callable", model=callable_reference(fallback)
                )
                served.append(
                    rank_callable_scores(
                        fallback, request.query, request.texts, request.metadata, top_k=top_k, cut=cut, stats=stats
                    )
                )
                stats.model_ms = (time.perf_counter() - started) * 1000
        out = []
        for result, reason in zip(served, reasons):
            stats = dataclasses.replace(
                result.stats, batches=list(result.stats.batches), served_by="fallback", fallback_reason=reason
            )
            out.append(RerankResult(list(result), query=result.query, threshold=result.threshold, stats=stats))
        return out

    def _report(self, stats: RerankStats) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("rerank stats: %s", stats, extra={"crossrank_stats": stats.to_dict()})
        if self.on_stats is not None:
            try:
                self.on_stats(stats)
            except Exception:
                # A broken metrics hook must not take reranking down with it; it is logged instead.
                logger.warning("on_stats hook %r raised; the result is returned anyway", self.on_stats, exc_info=True)

    # ----------------------------------------------------------------- score cache
    def _cache_scope(self) -> str:
        """Digest of everything besides the pair that determines a logit."""
        scope = self._cache_scope_value
        if scope is None:
            backend, encoder, config, calibration, path = self._load()
            weights = {}
            for relative in (config.onnx_file, config.torch_weights):
                if relative and (path / relative).is_file():
                    info = (path / relative).stat()
                    weights[relative] = [info.st_size, info.st_mtime_ns]
            scope = scope_digest(
                {
                    "model": config.name,
                    "revision": config.revision,
                    "files": config.files,
                    "weights": weights,
                    "quantization": getattr(backend, "quantization", config.quantization),
                    "backend": backend.name,
                    "device": self.device,
                    "calibrator": calibration.calibrator.to_dict(),
                    "max_length": encoder.max_length,
                    "max_query_length": encoder.max_query_length,
                    "long_documents": self.long_documents,
                    "window_overlap": self.window_overlap,
                    "window_pooling": self.window_pooling,
                    "max_windows": self.max_windows,
                }
            )
            self._cache_scope_value = scope
        return scope

    def _cached_logits(self, queries: list[str], texts: list[str], query_of_pair: list[int]) -> _Scored:
        cache = self.cache
        if cache is None or not texts:
            return self._score_pairs(queries, texts, query_of_pair)
        scope = self._cache_scope()
        keys = [pair_key(scope, queries[q], text) for q, text in zip(query_of_pair, texts)]
        hits = cache.get_many(scope, keys)
        missing = [i for i, key in enumerate(keys) if key not in hits]
        scored = self._score_pairs(queries, [texts[i] for i in missing], [query_of_pair[i] for i in missing])
        logits = np.array([hits.get(key, np.nan) for key in keys], dtype=np.float64)
        if missing:
            logits[missing] = scored.logits
            cache.put_many(scope, {keys[i]: float(logits[i]) for i in missing})
        scored.stats.documents = len(texts)
        scored.stats.cache_hits = len(texts) - len(missing)
        return _Scored(logits, scored.stats)

    def _split_stats(self, shared: RerankStats | None, documents: int, total: int) -> RerankStats:
        if shared is None:
            stats = RerankStats(documents=documents)
            if self._loaded is not None:
                stats.backend = self._loaded[0].name
                stats.model = f"{self._loaded[2].name}@{self._loaded[2].revision}"
            return stats
        if documents == total:
            return shared
        # Several queries shared the model calls: counts stay call-wide, documents are per query.
        stats = RerankStats(**{**shared.to_dict(), "batches": list(shared.batches), "documents": documents})
        return stats

    def _resolve_threshold(self, threshold: Threshold, calibration: Calibration) -> float | None:
        if threshold is None or threshold is False:
            return None
        if threshold == "calibrated":
            if calibration.threshold is None:
                raise ConfigurationError(
                    "threshold='calibrated' needs a fitted threshold in the model's calibration.json; "
                    "this model has none (fit one with 'crossrank tune' or pass a probability)"
                )
            return calibration.threshold
        return float(threshold)  # type: ignore[arg-type]

    def _finish(
        self,
        query: str,
        texts: list[str],
        metadata: list[dict[str, Any]],
        logits: np.ndarray,
        top_k: int | None,
        threshold: Threshold,
        stats: RerankStats,
        *,
        first_stage: np.ndarray | None = None,
    ) -> RerankResult:
        if not texts:
            return RerankResult([], query=query, threshold=None, stats=stats)
        calibration = self._load()[3]
        probabilities = np.clip(calibration.calibrator.transform(logits), 0.0, 1.0)
        cut = self._resolve_threshold(threshold, calibration)
        order = sorted(range(len(texts)), key=lambda i: (-probabilities[i], -logits[i], i))
        stats.best_score = float(probabilities[order[0]])
        kept = order
        abstain = False
        if cut is not None:
            kept = [i for i in order if probabilities[i] >= cut]
            stats.dropped_by_threshold = len(order) - len(kept)
            abstain = not kept
        if threshold == "calibrated" and calibration.abstention is not None and kept:
            from crossrank.abstention import should_abstain

            if should_abstain(calibration.abstention, probabilities[order], logits[order]):
                stats.dropped_by_threshold = len(order)
                kept, abstain = [], True
        stats.abstained = abstain
        if first_stage is not None and self.first_stage_weight > 0.0 and kept:
            # Fused over the whole candidate list, so a document's value does not depend on the cut.
            fused = fuse_scores(logits, first_stage, first_stage_weight=self.first_stage_weight)
            kept = sorted(kept, key=lambda i: (-fused[i], -probabilities[i], i))
        if top_k is not None:
            kept = kept[:top_k]
        documents = [
            ScoredDocument(
                index=i,
                text=texts[i],
                score=float(probabilities[i]),
                raw_score=float(logits[i]),
                metadata=metadata[i],
                rank=rank,
            )
            for rank, i in enumerate(kept, start=1)
        ]
        return RerankResult(documents, query=query, threshold=cut, stats=stats)

    # ----------------------------------------------------------------- async
    async def arerank(
        self,
        query: str,
        documents: Sequence[Any],
        *,
        top_k: int | None = _UNSET,
        threshold: Threshold = _UNSET,
        first_stage_scores: Sequence[float] | None = None,
    ) -> RerankResult:
        """:meth:`rerank` in a worker thread, so the event loop keeps running while the model works."""
        return await asyncio.to_thread(
            self.rerank, query, documents, top_k=top_k, threshold=threshold, first_stage_scores=first_stage_scores
        )

    async def ascore_many(
        self,
        requests: Sequence[tuple[str, Sequence[Any]]],
        *,
        top_k: int | None = _UNSET,
        threshold: Threshold = _UNSET,
        first_stage_scores: Sequence[Sequence[float] | None] | None = None,
    ) -> list[RerankResult]:
        return await asyncio.to_thread(
            self.score_many, requests, top_k=top_k, threshold=threshold, first_stage_scores=first_stage_scores
        )

    def __repr__(self) -> str:
        return f"Reranker(model={self.model!r}, backend={self.backend!r}, device={self.device!r})"


def _ort_has_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()

