"""What the three framework adapters share: building the reranker, calling it, reporting abstention.

The adapters only translate their framework's types to texts and back; every decision (the
threshold, the top-n cut, scores, abstention) is made here and in :class:`crossrank.Reranker`,
so the three behave identically.

Abstention is made visible in one way for all adapters: when a threshold leaves nothing, the
adapter returns an empty list, logs one INFO line on the ``crossrank.adapters`` logger and
calls the adapter's ``on_abstain(query, result)`` callback, if one was given, with the full
:class:`~crossrank.RerankResult` (``result.abstained`` is True, ``result.stats`` says how many
documents the threshold dropped).
"""

from __future__ import annotations

from contextvars import ContextVar

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import copy

from crossrank.config import RerankerConfig, check_threshold as _check_threshold, check_top_k, option_specs
from crossrank.errors import ConfigurationError, CrossRankError, describe
from crossrank.fusion import retriever_scores as read_retriever_scores
from crossrank.reranker import Reranker, Threshold
from crossrank.results import RerankResult, ScoredDocument

__all__ = [
    "ENGINE_DEFAULTS",
    "SHARED_RERANKER",
    "SharedEngineMixin",
    "RANK_KEY",
    "RAW_SCORE_KEY",
    "SCORE_KEY",
    "AbstainCallback",
    "adapter_reranker",
    "arerank_texts",
    "build_reranker",
    "check_threshold",
    "check_top_n",
    "engine_options",
    "rerank_texts",
    "retriever_scores",
    "scored_metadata",
]

logger = logging.getLogger("crossrank.adapters")

SCORE_KEY = "crossrank_score"
RAW_SCORE_KEY = "crossrank_raw_score"
RANK_KEY = "crossrank_rank"

AbstainCallback = Callable[[str, RerankResult], None]
"""Called as ``on_abstain(query, result)`` when a threshold removed every document."""

# The Reranker options every adapter exposes as its own parameters (declared once, on
# RerankerConfig, with adapter=True), with the engine's defaults. An adapter's field left at None
# is not given: the environment, then the configuration file, then this default applies.
ENGINE_DEFAULTS: dict[str, Any] = {name: spec.default for name, spec in option_specs().items() if spec.adapter}

# Set by an adapter's __init__ while pydantic runs, so model_post_init keeps the reranker that
# __init__ validated (possibly shared, possibly holding a callable fallback) instead of rebuilding it.
SHARED_RERANKER: ContextVar[Reranker | None] = ContextVar("crossrank_shared_reranker", default=None)

# Reranker options that belong to the adapter (per-call defaults), never to the shared engine.
_ADAPTER_OWNED = ("threshold", "top_k")


def build_reranker(
    reranker: Reranker | None,
    options: Mapping[str, Any],
    reranker_options: Mapping[str, Any] | None = None,
    config: RerankerConfig | Mapping[str, Any] | None = None,
) -> Reranker:
    """Return the given reranker, or build one from a configuration or the adapter's engine options.

    Args:
        reranker: An existing (possibly already loaded) reranker to share, or None.
        options: The adapter's engine options (keys of :data:`ENGINE_DEFAULTS`); None means
            not given, so the environment, the configuration file or the default applies.
        reranker_options: Further :class:`~crossrank.Reranker` keyword options
            (``max_query_length``, ``window_overlap``, ``calibration``, ``backend_options``...).
        config: A :class:`~crossrank.config.RerankerConfig` (or its ``to_dict()``), used as it
            is: the environment is not read.

    Raises:
        ConfigurationError: When a reranker or a configuration is given together with engine
            options (it would be ambiguous which one applies), or options are invalid.
    """
    extra = dict(reranker_options or {})
    unknown = sorted(set(options) - set(ENGINE_DEFAULTS))
    if unknown:
        raise ConfigurationError(f"unknown engine options {unknown}; known: {sorted(ENGINE_DEFAULTS)}")
    given = {key: value for key, value in options.items() if value is not None}
    if reranker is not None or config is not None:
        if reranker is not None and config is not None:
            raise ConfigurationError("pass either reranker= or config=, not both")
        if reranker is not None and not isinstance(reranker, Reranker):
            raise ConfigurationError(f"reranker must be a crossrank.Reranker; received {describe(reranker)}")
        if given or extra:
            what = "a reranker" if reranker is not None else "a configuration"
            raise ConfigurationError(
                f"pass either {what} or engine options, not both; received {what} and options {sorted(given) + sorted(extra)}"
            )
        if reranker is not None:
            return reranker
        if isinstance(config, Mapping):
            config = RerankerConfig.from_dict(config)
        if not isinstance(config, RerankerConfig):
            raise ConfigurationError(f"config must be a crossrank RerankerConfig or a mapping; received {describe(config)}")
        return Reranker.from_config(config)
    clashing = sorted(set(extra) & (set(ENGINE_DEFAULTS) | set(_ADAPTER_OWNED)))
    if clashing:
        raise ConfigurationError(
            f"reranker_options must not repeat the adapter's own parameters; received {clashing}"
        )
    return Reranker.from_dict({**given, **extra})


def adapter_reranker(
    reranker: Reranker | None,
    parameters: Mapping[str, Any],
    *,
    top_n_key: str = "top_n",
    threshold_key: str = "threshold",
) -> Reranker:
    """Validate an adapter's parameters and return the reranker it will use.

    Args:
        reranker: A reranker to share, or None to build one from ``parameters``.
        parameters: The adapter's keyword parameters (engine options, ``reranker_options``,
            top-n and threshold under the framework's names).

    Raises:
        ConfigurationError: For any invalid value, naming what was expected and received.
    """
    check_top_n(parameters.get(top_n_key), top_n_key, configuring=True)
    check_threshold(parameters.get(threshold_key), configuring=True)
    options = {key: parameters.get(key) for key in ENGINE_DEFAULTS}
    return build_reranker(reranker, options, parameters.get("reranker_options"), parameters.get("config"))


def engine_options(reranker: Reranker) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a reranker's configuration into (engine options, further reranker options).

    Used to serialize an adapter that was given a shared reranker: the saved configuration
    rebuilds an equivalent reranker. Further options equal to the Reranker's defaults are left
    out so saved configurations stay short.
    """
    config = reranker.to_dict()
    defaults = RerankerConfig().to_dict()
    options = {key: config[key] for key in ENGINE_DEFAULTS}
    extra = {
        key: value
        for key, value in config.items()
        if key not in ENGINE_DEFAULTS and key not in _ADAPTER_OWNED and value != defaults.get(key)
    }
    return options, extra


def check_threshold(threshold: object, *, configuring: bool = False) -> Threshold:
    """Validate a threshold: a probability in [0, 1] (NumPy numbers too), ``"calibrated"``, ``None`` or ``False``."""
    if threshold is None or threshold is False:
        return threshold  # type: ignore[return-value]
    try:
        return _check_threshold("threshold", threshold)
    except CrossRankError as exc:
        if configuring:
            raise ConfigurationError(f"{exc} (or 'calibrated', or None)") from None
        raise


def check_top_n(top_n: object, name: str = "top_n", *, configuring: bool = False) -> int | None:
    """Validate a top-n value: a positive int (NumPy integers too), or None for every document that passes."""
    if top_n is False:
        return None
    try:
        return check_top_k(name, top_n)
    except CrossRankError as exc:
        if configuring:
            raise ConfigurationError(str(exc)) from None
        raise


def _resolve(
    top_n: int | None, threshold: Threshold, default_top_n: int | None, default_threshold: Threshold
) -> tuple[int | None, Threshold]:
    # None means "use the configured default"; False, 0 and 0.0 are real values and are kept.
    top_n = default_top_n if top_n is None else check_top_n(top_n)
    threshold = default_threshold if threshold is None else check_threshold(threshold)
    return top_n, threshold


def _report(
    query: str, result: RerankResult, on_abstain: AbstainCallback | None, source: str
) -> None:
    if not result.abstained:
        return
    logger.info(
        "%s: abstained for query %r: none of %d documents passed threshold %s",
        source,
        query,
        result.stats.documents,
        result.threshold,
    )
    if on_abstain is not None:
        on_abstain(query, result)


def retriever_scores(reranker: Reranker, scores: Sequence[object], where: str) -> list[float] | None:
    """The framework's retriever scores of a call's documents when ``reranker`` fuses them, else None.

    See :func:`crossrank.fusion.retriever_scores`; a switched-off reranker reads none.
    """
    return read_retriever_scores(scores, weight=0.0 if reranker.disabled else reranker.first_stage_weight, where=where)


def rerank_texts(
    reranker: Reranker,
    query: str,
    texts: Sequence[str],
    *,
    top_n: int | None,
    threshold: Threshold,
    default_top_n: int | None,
    default_threshold: Threshold,
    on_abstain: AbstainCallback | None,
    source: str,
    first_stage_scores: Sequence[float] | None = None,
) -> RerankResult:
    """Rerank ``texts`` for ``query`` with per-call values falling back to the adapter's defaults.

    The threshold is applied before the top-n cut (by the core). ``source`` names the adapter
    in the abstention log line; ``first_stage_scores`` come from :func:`retriever_scores`.
    """
    top_n, threshold = _resolve(top_n, threshold, default_top_n, default_threshold)
    result = reranker.rerank(query, list(texts), top_k=top_n, threshold=threshold, first_stage_scores=first_stage_scores)
    _report(query, result, on_abstain, source)
    return result


async def arerank_texts(
    reranker: Reranker,
    query: str,
    texts: Sequence[str],
    *,
    top_n: int | None,
    threshold: Threshold,
    default_top_n: int | None,
    default_threshold: Threshold,
    on_abstain: AbstainCallback | None,
    source: str,
    first_stage_scores: Sequence[float] | None = None,
) -> RerankResult:
    """:func:`rerank_texts` with the model running in a worker thread (the loop keeps running)."""
    top_n, threshold = _resolve(top_n, threshold, default_top_n, default_threshold)
    result = await reranker.arerank(
        query, list(texts), top_k=top_n, threshold=threshold, first_stage_scores=first_stage_scores
    )
    _report(query, result, on_abstain, source)
    return result


def scored_metadata(metadata: Mapping[str, Any], scored: ScoredDocument) -> dict[str, Any]:
    """A deep copy of ``metadata`` with the crossrank score, raw score and rank added (plain Python types).

    Deep, so that changing a nested value of a result never changes the caller's document.
    """
    return {
        **copy.deepcopy(dict(metadata)),
        SCORE_KEY: float(scored.score),
        RAW_SCORE_KEY: float(scored.raw_score),
        RANK_KEY: int(scored.rank),
    }


class SharedEngineMixin:
    """Construction shared by the pydantic-based adapters (LlamaIndex, LangChain).

    Put it before the framework's base class. ``__init__`` validates the options with
    crossrank's own errors and either shares the given reranker or builds one;
    ``model_post_init`` builds one for ``model_validate()``, which bypasses ``__init__``.
    """

    _reranker: Reranker
    _on_abstain: AbstainCallback | None

    def __init__(
        self,
        *,
        reranker: Reranker | None = None,
        config: RerankerConfig | Mapping[str, Any] | None = None,
        on_abstain: AbstainCallback | None = None,
        **data: Any,
    ) -> None:
        # Validated here, before pydantic, so that bad values raise crossrank's ConfigurationError.
        engine = adapter_reranker(reranker, {**data, "config": config})
        if reranker is not None or config is not None:
            # Saved as explicit engine options, so a saved adapter rebuilds an equivalent reranker.
            options, extra = engine_options(engine)
            data = {**data, **options, "reranker_options": extra}
        token = SHARED_RERANKER.set(engine)
        try:
            super().__init__(**data)
        finally:
            SHARED_RERANKER.reset(token)
        self._reranker = engine
        self._on_abstain = on_abstain

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)  # type: ignore[misc]
        if SHARED_RERANKER.get() is not None:
            return  # __init__ hands over the reranker it validated; rebuilding would lose callables
        options = {key: getattr(self, key) for key in ENGINE_DEFAULTS}
        self._reranker = build_reranker(None, options, self.reranker_options)  # type: ignore[attr-defined]

    @property
    def reranker(self) -> Reranker:
        """The :class:`crossrank.Reranker` doing the work (shareable with other adapters)."""
        return self._reranker

    def warm_up(self) -> Any:
        """Load the model now rather than on the first call. Returns ``self``."""
        self._reranker.warm_up()
        return self
