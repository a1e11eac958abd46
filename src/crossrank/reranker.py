"""The reranker: a thin facade over the engine's stages (load, score, decide, serve).

Where each concern lives:

- options and their precedence: :mod:`crossrank.config` (:class:`~crossrank.config.RerankerConfig`);
- loading a model, its calibration and its scorer identity: :mod:`crossrank.engine.loading`;
- the batch path (encode, plan batches, run, pool windows) and the score cache:
  :mod:`crossrank.engine.scoring`;
- the keep/abstain decision: :func:`crossrank.engine.decision.decide`;
- the disabled switch, deadline, confidence check and fallback: :mod:`crossrank.engine.serving`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossrank.config import RerankerConfig, check_threshold, check_top_k, option_specs
from crossrank.engine.decision import Policy
from crossrank.engine.lifecycle import Loaded, ModelSlot
from crossrank.engine.loading import LoadedModel, load_model
from crossrank.engine.ranking import rank_requests
from crossrank.engine.requests import Request, parse_pairs, parse_requests
from crossrank.engine.scoring import CachedScorer, PairScorer
from crossrank.engine.serving import ServingChain, pass_through
from crossrank.errors import ConfigurationError, InvalidInputError, describe
from crossrank.results import RerankResult, RerankStats
from crossrank.settings import UNSET

if TYPE_CHECKING:
    import pluggy

    from crossrank.calibration import Calibration
    from crossrank.models.config import ModelConfig

__all__ = ["Reranker", "Threshold", "StatsHook"]

logger = logging.getLogger("crossrank")

Threshold = float | str | bool | None
"""A probability in [0, 1], ``"calibrated"`` for the model's fitted rule, ``False`` for none,
or ``None`` (per call: keep the configured value)."""

StatsHook = Callable[[RerankStats], None]
"""Called with the :class:`~crossrank.RerankStats` of every query a reranker serves."""

# Options whose change needs the model loaded again; the others change decisions or serving only.
_RELOAD_GROUPS = ("model", "scoring", "long documents")


class Reranker:
    """Reranks passages for a query with a cross-encoder and calibrated scores.

    The constructor only validates; the model loads on first use or on :meth:`warm_up`.
    Every option is declared once on :class:`~crossrank.config.RerankerConfig` (listed in
    docs/options.md); the main ones are ``model``, ``backend``, ``device``,
    ``max_length``, ``long_documents``, ``threshold``, ``top_k``, ``first_stage_weight``,
    ``calibration``, ``fallback``, ``primary_timeout``, ``min_confidence`` and ``cache``.

    ``Reranker(**options)`` (or ``Reranker("model", **options)``) reads every option left out
    from the environment (``CROSSRANK_<OPTION>``), then the configuration file
    (``config_file=`` or ``$CROSSRANK_CONFIG``), then the default: explicit argument >
    environment > file > default. ``setting_sources`` records where each came from.
    ``Reranker(config)`` or :meth:`from_config` use a :class:`~crossrank.config.RerankerConfig`
    as it is and never read the environment, which is what internal callers need.

    Args:
        config: A :class:`~crossrank.config.RerankerConfig`, or the model name or folder.
        plugin_manager: A custom plugin manager (default: the process-wide one).
        on_stats: Called with each query's :class:`~crossrank.RerankStats` (for metrics).
        config_file: A TOML/YAML file of options (default: ``$CROSSRANK_CONFIG``, if set).
        **options: Any :class:`~crossrank.config.RerankerConfig` option.

    Example:
        >>> from crossrank import Reranker
        >>> reranker = Reranker(top_k=2)  # cheap: nothing is loaded yet
        >>> reranker.top_k
        2
        >>> result = reranker.rerank(  # doctest: +SKIP
        ...     "How many people live in Berlin?",
        ...     ["Berlin has about 3.7 million inhabitants.", "Berlin is known for its museums."],
        ... )
        >>> result[0].index  # doctest: +SKIP
        0
    """

    def __init__(
        self,
        config: RerankerConfig | str | Path | None = None,
        /,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        on_stats: StatsHook | None = None,
        config_file: str | Path | None = None,
        **options: Any,
    ) -> None:
        options = {name: value for name, value in options.items() if value is not UNSET}
        if isinstance(config, RerankerConfig):
            settings = config.replace(**options) if options else config
            sources = {name: "argument" if name in options else "configuration" for name in option_specs()}
        else:
            if config is not None:
                if "model" in options:
                    raise ConfigurationError("the model was given twice: positionally and as model=")
                options["model"] = config
            settings, sources = RerankerConfig.resolve(options, environ=os.environ, file=config_file)
        if on_stats is not None and not callable(on_stats):
            raise ConfigurationError(f"on_stats must be a callable taking RerankStats; received {describe(on_stats)}")
        file = sources.pop("config_file", None)
        self.__dict__.update(
            _settings=settings,
            setting_sources=sources,
            config_file=Path(file) if file is not None else None,
            on_stats=on_stats,
            _plugin_manager=plugin_manager,
            _from_environment=not isinstance(config, RerankerConfig),
            _lock=threading.RLock(),
            _slot=ModelSlot(self._build_loaded),
        )
        self._configure_serving()

    @classmethod
    def from_config(
        cls,
        config: RerankerConfig,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        on_stats: StatsHook | None = None,
    ) -> Reranker:
        """Build from an explicit configuration; the environment and files are not read."""
        if not isinstance(config, RerankerConfig):
            raise ConfigurationError(f"from_config expects a RerankerConfig; received {describe(config)}")
        return cls(config, plugin_manager=plugin_manager, on_stats=on_stats)

    # ----------------------------------------------------------------- configuration
    @property
    def config(self) -> RerankerConfig:
        """The effective configuration (immutable; see :meth:`reconfigure`)."""
        return self._settings

    def __getattr__(self, name: str) -> Any:
        # Options read as attributes: reranker.model, reranker.threshold, reranker.top_k...
        if name in option_specs():
            return getattr(self.__dict__["_settings"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in option_specs():
            self.reconfigure(**{name: value})
        else:
            super().__setattr__(name, value)

    def reconfigure(self, **changes: Any) -> Reranker:
        """Change options in place (checked first); a model-changing option reloads on next use.

        Safe while other threads rerank: a call in flight finishes with the settings it began with.
        """
        with self._lock:
            settings = self._settings.replace(**changes)
            reload = any(option_specs()[name].group in _RELOAD_GROUPS for name in changes)
            self.__dict__["_settings"] = settings
            self.setting_sources.update({name: "argument" for name in changes})
            if reload or "cache" in changes:
                self._slot.reset()  # the scorer holds the cache too
            self._configure_serving(set(changes))
        return self

    def _configure_serving(self, changed: set[str] | None = None) -> None:
        """Build (or, after a reconfiguration, update) the cache, the fallback and the serving chain.

        Only what ``changed`` touches is rebuilt: the cache keeps its entries and the chain its
        count of abandoned calls across unrelated changes.
        """
        from crossrank.score_cache import cache_from_spec

        settings = self._settings
        if changed is None or "cache" in changed:
            self.__dict__["cache"] = cache_from_spec(settings.cache)
        if changed is None or changed & {"fallback", "device", "allow_download"}:
            self.__dict__["fallback"] = self._build_fallback(settings.fallback)
        chain = self.__dict__.get("_chain")
        if chain is None:
            chain = self.__dict__["_chain"] = ServingChain(self._rank, name=settings.model)
        chain.configure(
            name=settings.model,
            fallback=self.fallback,
            primary_timeout=settings.primary_timeout,
            min_confidence=settings.min_confidence,
            max_abandoned_calls=settings.max_abandoned_calls,
        )

    def _build_fallback(self, option: object) -> Reranker | Callable[..., Any] | None:
        if option is None:
            return None
        if option is self:
            raise ConfigurationError("a reranker cannot be its own fallback")
        if isinstance(option, Reranker) or (callable(option) and not isinstance(option, RerankerConfig)):
            return option  # type: ignore[return-value]
        if isinstance(option, Mapping):
            option = RerankerConfig.from_dict(option)
        if isinstance(option, RerankerConfig):
            return Reranker.from_config(option, plugin_manager=self._plugin_manager)
        settings = self._settings
        if not self._from_environment:
            fallback = RerankerConfig(model=str(option), device=settings.device, allow_download=settings.allow_download)
            return Reranker.from_config(fallback, plugin_manager=self._plugin_manager)
        # Explicit values, so the environment's fallback settings cannot chain without end.
        return Reranker(
            str(option), device=settings.device, allow_download=settings.allow_download,
            plugin_manager=self._plugin_manager, disabled=False, fallback=None, primary_timeout=None,
            min_confidence=None, config_file=self.config_file,
        )

    def to_dict(self) -> dict[str, Any]:
        """The options as plain JSON-compatible values (see :meth:`RerankerConfig.to_dict`)."""
        data = self._settings.to_dict()
        data["cache"] = self.cache.to_dict() if self.cache is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **runtime: Any) -> Reranker:
        """Rebuild a reranker from :meth:`to_dict`; its values count as explicit arguments.

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
        objects = {k: v for k, v in runtime.items() if k in ("fallback", "cache")}
        config = RerankerConfig.from_dict(data, **objects)
        given = {name: getattr(config, name) for name in data if name in option_specs()}
        given.update(objects)
        return cls(plugin_manager=runtime.get("plugin_manager"), on_stats=runtime.get("on_stats"), **given)

    # ----------------------------------------------------------------- loading
    def warm_up(self) -> Reranker:
        """Load the model now (otherwise it loads on first use). Returns ``self``."""
        self._load()
        return self

    @property
    def is_loaded(self) -> bool:
        return self._slot.current is not None

    @property
    def loaded(self) -> LoadedModel:
        """The loaded model (loads it if needed)."""
        return self._load()

    @property
    def model_config(self) -> ModelConfig:
        return self._load().config

    @property
    def model_path(self) -> Path:
        return self._load().path

    @property
    def quantization(self) -> str:
        """How the loaded graph quantizes: ``"per-token-int8"``, ``"dynamic-int8"`` (per tensor) or ``"none"``."""
        return self._load().quantization

    @property
    def calibration(self) -> Calibration:
        return self._load().calibration

    @property
    def backend_name(self) -> str:
        return self._load().backend.name

    @property
    def model_id(self) -> str:
        """``name@revision`` of the graph that scores: identifies the scores this reranker produces."""
        return self._load().model_id

    def scorer_id(self) -> str:
        """A digest of everything besides the pair that determines a raw score (see :mod:`crossrank.engine.loading`)."""
        return self._load().scorer_id()

    def _load(self) -> LoadedModel:
        return self._slot.get().model

    def _build_loaded(self) -> Loaded:
        settings = self._settings
        loaded = load_model(settings, self._plugin_manager)
        scorer: Any = PairScorer(
            loaded, batch_size=settings.batch_size, token_budget=loaded.token_budget,
            window_pooling=settings.window_pooling, show_progress=settings.show_progress,
        )
        if self.cache is not None:
            scorer = CachedScorer(scorer, self.cache)
        return Loaded(loaded, scorer)

    def close(self) -> None:
        """Release the model (calls in flight finish first); the next call loads it again."""
        self._slot.reset()

    # ----------------------------------------------------------------- scoring
    def score(self, pairs: Sequence[tuple[str, Any]], *, raw: bool = False) -> np.ndarray:
        """Score ``(query, document)`` pairs in one batched pass.

        Returns calibrated probabilities (or raw logits with ``raw=True``) in input order.

        Example:
            >>> Reranker().score([("capital of France", "Paris is the capital of France.")])  # doctest: +SKIP
            array([0.99...])
        """
        queries, texts, query_of_pair = parse_pairs(pairs)
        if self.disabled:
            return np.full(len(texts), np.nan)
        with self._slot.borrow() as loaded:
            logits = loaded.scorer.score(queries, texts, query_of_pair).logits
        if raw or not len(logits):
            return logits
        return loaded.model.calibration.calibrator.transform(logits)

    def rerank(
        self,
        query: str,
        documents: Sequence[Any],
        *,
        top_k: int | bool | None = None,
        threshold: Threshold = None,
        first_stage_scores: Sequence[float] | None = None,
    ) -> RerankResult:
        """Rank ``documents`` for ``query``, best first.

        Args:
            query: The question or search query.
            documents: Strings, :class:`~crossrank.Document` objects, mappings with a
                ``text`` key, or framework documents; none of them is modified.
            top_k: Keep at most this many (after the threshold). ``None`` (or leaving it out)
                keeps the configured value; ``False`` returns all that pass.
            threshold: Keep only documents whose calibrated score is at least this
                probability; ``"calibrated"`` applies the model's fitted rule. ``None`` (or
                leaving it out) keeps the configured value; ``False`` switches it off.
            first_stage_scores: The retriever's score of each document, in the same order
                (any scale, higher is better). With the default ``first_stage_weight="auto"``
                they are fused into the order with weight 0.3 when given; a numeric weight
                above 0 needs them; with weight 0 they do not change the order.

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
        top_k: int | bool | None = None,
        threshold: Threshold = None,
        first_stage_scores: Sequence[Sequence[float] | None] | None = None,
    ) -> list[RerankResult]:
        """Rerank several queries' candidate lists in one batched pass (multi-query batching).

        ``top_k`` and ``threshold`` work as in :meth:`rerank`; ``first_stage_scores``, when
        given, holds one entry per request: that request's retriever scores or None.
        """
        started = time.perf_counter()
        settings = self._settings
        policy = self._policy(settings, top_k, threshold)
        if policy.threshold == "calibrated" and self.fallback is not None and not isinstance(self.fallback, Reranker):
            raise InvalidInputError("threshold='calibrated' cannot apply to a callable fallback; pass a probability")
        fusing = 0.0 if settings.disabled else settings.first_stage_weight
        parsed = parse_requests(requests, first_stage_scores, fusing=fusing)
        if settings.disabled:
            results = [pass_through(request, policy.top_k) for request in parsed]
        else:
            results = self._chain.serve(parsed, policy)
        total_ms = (time.perf_counter() - started) * 1000
        for result in results:
            result.stats.total_ms = total_ms
            self._report(result.stats)
        return results

    @staticmethod
    def _policy(settings: RerankerConfig, top_k: object, threshold: object) -> Policy:
        """Per-call values over the configured ones: None keeps the configuration, False switches off."""
        if top_k is not None and top_k is not UNSET:
            top_k = check_top_k("top_k", top_k)
        else:
            top_k = settings.top_k
        if threshold is not None and threshold is not UNSET:
            threshold = check_threshold("threshold", threshold)
        else:
            threshold = settings.threshold
        return Policy(threshold=threshold, top_k=top_k, first_stage_weight=settings.first_stage_weight)  # type: ignore[arg-type]

    def _rank(self, requests: list[Request], policy: Policy) -> list[RerankResult]:
        """The primary path: load, score all pairs in one pass, decide each query."""
        if not any(request.texts for request in requests):
            # Nothing to score: no reason to load a model.
            return [RerankResult([], query=r.query, threshold=None, stats=RerankStats()) for r in requests]
        with self._slot.borrow() as loaded:
            return rank_requests(loaded.model, loaded.scorer, requests, policy)

    def _report(self, stats: RerankStats) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("rerank stats: %s", stats, extra={"crossrank_stats": stats.to_dict()})
        if self.on_stats is not None:
            try:
                self.on_stats(stats)
            except Exception:
                # A broken metrics hook must not take reranking down with it; it is logged instead.
                logger.warning("on_stats hook %r raised; the result is returned anyway", self.on_stats, exc_info=True)

    # ----------------------------------------------------------------- async
    async def arerank(
        self,
        query: str,
        documents: Sequence[Any],
        *,
        top_k: int | bool | None = None,
        threshold: Threshold = None,
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
        top_k: int | bool | None = None,
        threshold: Threshold = None,
        first_stage_scores: Sequence[Sequence[float] | None] | None = None,
    ) -> list[RerankResult]:
        """:meth:`score_many` in a worker thread."""
        return await asyncio.to_thread(
            self.score_many, requests, top_k=top_k, threshold=threshold, first_stage_scores=first_stage_scores
        )

    def __repr__(self) -> str:
        return f"Reranker(model={self.model!r}, backend={self.backend!r}, device={self.device!r})"

