"""Load stage: from a configuration to a loaded model (backend, encoder, calibration) and its identity.

:func:`load_model` resolves the model (domain registry, local folder, caches, sources), picks a
backend through the plugin registry, builds the pair encoder and the calibration, and returns
a :class:`LoadedModel`. :func:`scorer_identity` says what, besides the pair itself, determines
a raw score; the runtime score cache, ``crossrank eval``'s score cache and the
calibration-mismatch check all use it, so they cannot disagree.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossrank.backends.base import BackendSpec, ScoringBackend
from crossrank.calibration import CALIBRATION_FILENAME, Calibration, load_calibration, packaged_calibration
from crossrank.config import RerankerConfig
from crossrank.drift import DriftMonitor, monitor_for
from crossrank.encoding import PairEncoder
from crossrank.errors import BackendUnavailableError, ConfigurationError
from crossrank.families import ModelFamily, ModelFiles, model_lengths, resolve_family
from crossrank.models.config import UNVERSIONED, ModelConfig
from crossrank.quantization import activation_setting

if TYPE_CHECKING:
    import pluggy

    from crossrank.models.resolve import ResolvedModel

__all__ = ["LoadedModel", "PreparedModel", "load_model", "prepare_model", "scorer_identity", "scorer_id"]

logger = logging.getLogger("crossrank")

_DEFAULT_TOKEN_BUDGET: int = RerankerConfig.__dataclass_fields__["token_budget"].default


@dataclass(frozen=True)
class LoadedModel:
    """Everything a loaded reranker scores with.

    Attributes:
        backend: The scoring backend (an ONNX Runtime session, a torch module, a plugin's).
        encoder: Turns (query, document) pairs into model rows.
        config: The model folder's description (``crossrank.json``).
        calibration: Maps raw logits to probabilities; may hold a fitted threshold and rule.
        path: The model folder.
        settings: The reranker configuration it was loaded for (``token_budget`` raised to
            ``max_length`` where the default budget was below it).
        drift: Watches the top scores of served queries against the calibration's fitting
            data (None when the calibration records no large enough reference).
        family: The model family that encodes pairs and scores them (see :mod:`crossrank.families`).
        instruction: The instruction in the family's prompt (None for families without one).
        position_limit: The longest row the model's position table holds.
    """

    backend: ScoringBackend
    encoder: PairEncoder
    config: ModelConfig
    calibration: Calibration
    path: Path
    settings: RerankerConfig
    drift: DriftMonitor | None = None
    family: ModelFamily | None = None
    instruction: str | None = None
    position_limit: int | None = None
    _identity: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def token_budget(self) -> int:
        """The token budget batches are planned with: at least one full row."""
        return self.settings.token_budget

    @property
    def quantization(self) -> str:
        """How the loaded graph quantizes: ``"per-token-int8"``, ``"dynamic-int8"`` or ``"none"``."""
        return str(getattr(self.backend, "quantization", self.config.quantization))

    @property
    def activation_quantization(self) -> str | None:
        """``"per-tensor"`` when a model with a per-token graph runs its per-tensor one, else None."""
        return activation_setting(self.config.quantization, self.quantization)

    @property
    def model_id(self) -> str:
        """``name@revision`` of the graph that really scores (``+per-tensor`` for the recorded per-tensor graph)."""
        label = f"{self.config.name}@{self.config.revision}"
        activation = self.activation_quantization
        return label if activation is None else f"{label}+{activation}"

    def identity(self) -> dict[str, Any]:
        """See :func:`scorer_identity` (computed once per load)."""
        if not self._identity:
            self._identity.update(scorer_identity(self))
        return dict(self._identity)

    def scorer_id(self) -> str:
        """A digest of :meth:`identity`: equal ids mean equal raw scores for equal pairs."""
        return scorer_id(self.identity())

    def close(self) -> None:
        self.backend.close()


def scorer_identity(loaded: LoadedModel) -> dict[str, Any]:
    """Everything besides the (query, document) pair that determines a raw score.

    The model (name, revision and the graph variant that runs), its family and the instruction
    in the family's prompt, a digest of every file that
    changes a score (weights, graph, tokenizer, configuration), the backend and device, the
    effective lengths and long-document settings (window settings only in window mode), and,
    for graphs whose int8 products saturate differently per CPU, the int8 instruction set.
    """
    settings, config, encoder = loaded.settings, loaded.config, loaded.encoder
    windowed = settings.long_documents == "window"
    identity: dict[str, Any] = {
        # The weights by name and revision; the graph variant that runs is "activation_quantization".
        "model": f"{config.name}@{config.revision}",
        "family": loaded.family.name if loaded.family is not None else None,
        "instruction": loaded.instruction,
        "backend": loaded.backend.name,
        "device": settings.device,
        "max_length": encoder.max_length,
        "max_query_length": encoder.max_query_length,
        "long_documents": settings.long_documents,
        "window_overlap": settings.window_overlap if windowed else None,
        "window_pooling": settings.window_pooling if windowed else None,
        "max_windows": settings.max_windows if windowed else None,
        "model_fingerprint": files_fingerprint(loaded.path, config),
    }
    activation = loaded.activation_quantization
    if activation is not None:
        identity["activation_quantization"] = activation
    if identity["backend"] == "onnx" and (activation == "per-tensor" or config.quantization == "static-int8"):
        # Full-range 8-bit activations: without VNNI the int8 products saturate, so these scores
        # depend on the CPU (see crossrank.quantization.int8_instruction_set).
        from crossrank.quantization import int8_instruction_set

        identity["int8_kernels"] = int8_instruction_set()
    return identity


def scorer_id(identity: Mapping[str, Any]) -> str:
    """The SHA-256 of a scorer identity's canonical JSON."""
    return hashlib.sha256(json.dumps(dict(identity), sort_keys=True, default=str).encode("utf-8")).hexdigest()


def files_fingerprint(folder: Path, config: ModelConfig) -> str:
    """A digest of the files that change a score.

    A versioned model whose ``crossrank.json`` records the SHA-256 of its files (verified on
    load) counts by those hashes. Any other folder counts by the size and modification time of
    its graph, weights, tokenizer and configuration files: replacing one in place changes the
    fingerprint without hashing large files on every load.
    """
    digest = hashlib.sha256()
    if config.files and config.revision != UNVERSIONED:
        for name in sorted(config.files):
            digest.update(f"{name}\x00{config.files[name]}\x00".encode())
        return digest.hexdigest()
    names = {config.onnx_file, config.torch_weights, config.tokenizer_file, "config.json", *config.files}
    for name in sorted(n for n in names if n):
        path = Path(folder) / name
        if path.is_file():
            info = path.stat()
            digest.update(f"{name}\x00{info.st_size}\x00{info.st_mtime_ns}\x00".encode())
    return digest.hexdigest()


def model_to_load(settings: RerankerConfig) -> str:
    """The speed profile's model, else the domain's registered model, else ``settings.model``.

    Raises:
        ModelNotFoundError: ``settings.profile`` is not registered.
        ConfigurationError: A profile and a domain with a model of its own both name a model.
    """
    domain_path = None
    if settings.domain is not None:
        from crossrank.models.domains import domain_model_path

        domain_path = domain_model_path(settings.domain)
    if settings.profile is not None:
        from crossrank.models.profiles import profile_model_path

        if domain_path is not None:
            raise ConfigurationError(
                f"profile={settings.profile!r} and domain={settings.domain!r} both name a model (the domain has one "
                f"registered at {domain_path}); choose one"
            )
        path = profile_model_path(settings.profile)
        logger.debug("speed profile %r: using %s", settings.profile, path)
        return str(path)
    if settings.domain is None:
        return settings.model
    path = domain_path
    if path is None:
        logger.info("domain %r has no registered model; using %s", settings.domain, settings.model)
        return settings.model
    logger.debug("domain %r: using %s", settings.domain, path)
    return str(path)


@dataclass(frozen=True)
class PreparedModel:
    """A resolved model with its family and pair encoder, before any backend runs it.

    Attributes:
        path: The model folder.
        config: Its ``crossrank.json`` (or detected description).
        files: What its files say about it (``config.json``, tokenizer and sentence-transformers settings).
        family: The family that encodes and scores it.
        instruction: The instruction in the family's prompt (None without one).
        encoder: The pair encoder for these settings.
        limit: The longest row the model accepts.
        settings: The settings it was prepared for (the default ``token_budget`` raised to
            ``max_length`` where that is longer).
        calibration: The calibration its scores will use (see :func:`prepare_model`).
        calibration_file: The file that calibration was read from (None: given as an object, or
            none fitted).
    """

    path: Path
    config: ModelConfig
    files: ModelFiles
    family: ModelFamily
    instruction: str | None
    encoder: PairEncoder
    limit: int
    settings: RerankerConfig
    calibration: Calibration
    calibration_file: Path | None


def prepare_model(
    settings: RerankerConfig, plugin_manager: pluggy.PluginManager | None = None, *, resolved: ResolvedModel | None = None
) -> PreparedModel:
    """Resolve the model ``settings`` names, choose its family and build its pair encoder.

    The family is ``settings.family``, else the one the folder's ``crossrank.json`` records, else
    the one the table of known model ids names, else the one its files show (``resolved``: an
    already located model, e.g. a training checkpoint read as it is). The calibration is the
    explicit one, then the domain's slot, then the model folder's, then a packaged one.
    ``max_length`` defaults to the length that calibration was fitted at (so its probabilities
    are the fitted ones; the embedded default's packaged calibration was fitted at 192 tokens,
    the shortest length on the quality/speed frontier), else to what the model's own code uses
    (capped at 512 tokens); it never exceeds the position table. The default ``token_budget``
    grows to ``max_length`` when that is longer.

    Raises:
        ModelNotFoundError: No source has the model (the message lists where it looked).
        ConfigurationError: An unknown family, a language model no family claims, or settings
            that do not fit the model (``max_length`` over its limit...).
    """
    from crossrank.models.resolve import resolve_model
    from crossrank.plugins import family_registry

    requested = model_to_load(settings)
    if resolved is None:
        resolved = resolve_model(requested, plugin_manager=plugin_manager, allow_fetch=settings.allow_download)
    config = resolved.config
    files = ModelFiles.read(resolved.path)
    family = resolve_family(
        family_registry(plugin_manager), files, requested=settings.family, recorded=config.family,
        names=(requested, settings.model, config.name),
    )
    instruction = family.instruction_for(settings.instruction if settings.instruction is not None else config.instruction)
    calibration, calibration_file = _load_calibration(
        settings.calibration, resolved.path, config, family.probability_note(files), domain=settings.domain
    )
    limit, default_length, source = model_lengths(files, config.max_length)
    fitted_length = calibration_length(calibration, config, limit)
    if fitted_length is not None:
        default_length, source = fitted_length, "the length its calibration was fitted at"
    max_length = settings.max_length or default_length
    if max_length > limit:
        raise ConfigurationError(
            f"max_length={max_length} exceeds the model's limit of {limit} tokens"
            + (f" (its position table holds {files.position_limit})" if files.position_limit == limit else "")
        )
    if settings.token_budget < max_length:
        if settings.token_budget != _DEFAULT_TOKEN_BUDGET:
            raise ConfigurationError(
                f"token_budget={settings.token_budget} must be at least max_length={max_length} so one full row fits"
            )
        # The default budget follows a longer max_length: one full row always fits a call.
        logger.debug("token_budget follows max_length=%d (default budget %d)", max_length, settings.token_budget)
        settings = settings.replace(token_budget=max_length)
    if settings.max_length is None:
        logger.debug("max_length %d from %s (model limit %d)", max_length, source, limit)
    tokenizer = _load_tokenizer(resolved.path / config.tokenizer_file)
    encoder = PairEncoder(
        tokenizer,
        max_length=max_length,
        max_query_length=settings.max_query_length,
        long_documents=settings.long_documents,
        window_overlap=settings.window_overlap,
        max_windows=settings.max_windows,
        layout=family.layout(tokenizer, files, instruction=instruction),
    )
    return PreparedModel(
        resolved.path, config, files, family, instruction, encoder, limit, settings, calibration, calibration_file
    )


def calibrated_backend_options(
    backend: str, options: Mapping[str, Any], calibration: Calibration, config: ModelConfig
) -> dict[str, Any]:
    """``options``, with the activation quantization the calibration was fitted with when none is given.

    An int8 ONNX model whose calibration records per-tensor scores (``crossrank calibrate`` or
    ``crossrank tune`` run with ``activation_quantization="per-tensor"``, as for the ``fast``
    speed profile) runs per tensor by default, pair by pair with one call per core, so its
    probabilities are the fitted ones. Options given explicitly are kept as they are.
    """
    chosen = dict(options)
    if backend != "onnx" or "activation_quantization" in chosen:
        return chosen
    if config.quantization not in ("dynamic-int8", "per-token-int8"):
        return chosen
    if _fitted_scorer(calibration, config).get("activation_quantization") == "per-tensor":
        chosen["activation_quantization"] = "per-tensor"
    return chosen


def calibration_length(calibration: Calibration, config: ModelConfig, limit: int) -> int | None:
    """The ``max_length`` ``calibration`` was fitted at, when it applies to this model and fits it.

    None when the calibration records no scorer length, was fitted on another model's scores,
    or records a length over ``limit``.
    """
    length = _fitted_scorer(calibration, config).get("max_length")
    if isinstance(length, bool) or not isinstance(length, int) or not 8 <= length <= limit:
        return None
    return length


def _fitted_scorer(calibration: Calibration, config: ModelConfig) -> Mapping[str, Any]:
    """The scorer settings ``calibration`` records, or ``{}`` when it records none or names another model."""
    scorer = calibration.provenance.get("scorer")
    if not isinstance(scorer, Mapping) or _names_another_model(scorer.get("model"), config):
        return {}
    return scorer


def _names_another_model(fitted: object, config: ModelConfig) -> bool:
    """Whether a recorded scorer model (``name@revision``, maybe ``+variant``) is not ``config``'s."""
    return isinstance(fitted, str) and fitted.split("+", 1)[0] != f"{config.name}@{config.revision}"


def load_model(settings: RerankerConfig, plugin_manager: pluggy.PluginManager | None = None) -> LoadedModel:
    """Resolve, check and load everything ``settings`` names (see :func:`prepare_model`).

    Raises:
        ModelNotFoundError: No source has the model (the message lists where it looked).
        ModelIntegrityError: A model file is missing or does not match its recorded hash.
        BackendUnavailableError: No installed backend can run the model.
        ConfigurationError: The settings do not fit the model (``max_length`` over its limit...).
    """
    from crossrank.plugins import backend_registry

    prepared = prepare_model(settings, plugin_manager)
    config, family, settings = prepared.config, prepared.family, prepared.settings
    spec = choose_backend(settings, backend_registry(plugin_manager), config)
    options = calibrated_backend_options(spec.name, settings.backend_options, prepared.calibration, config)
    backend = spec.build(prepared.path, config, settings.device, options, family=family)
    calibration = prepared.calibration
    drift = monitor_for(calibration.provenance, name=config.name)
    loaded = LoadedModel(
        backend, prepared.encoder, config, calibration, prepared.path, settings, drift,
        family=family, instruction=prepared.instruction, position_limit=prepared.limit,
    )
    _note_calibration_mismatch(loaded)
    logger.debug(
        "loaded model %s (%s, family %s) from %s with backend %s", config.name, config.revision, family.name,
        prepared.path, spec.name,
    )
    return loaded


def _load_tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer

    from crossrank.errors import ModelIntegrityError

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception subclasses for bad JSON
        raise ModelIntegrityError(f"cannot load tokenizer {path}: {exc}") from None
    # Some tokenizer.json files pad or truncate every text; pairs are laid out by the encoder.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def choose_backend(settings: RerankerConfig, registry: Mapping[str, BackendSpec], config: ModelConfig) -> BackendSpec:
    """The backend ``settings.backend`` names, or for ``"auto"`` the best installed one that can run the model."""
    if settings.backend != "auto":
        spec = registry.get(settings.backend)
        if spec is None:
            raise BackendUnavailableError(f"unknown backend {settings.backend!r}; registered: {sorted(registry)}")
        if not spec.is_available():
            raise BackendUnavailableError(f"backend {settings.backend!r} is not installed: {spec.description}")
        if not spec.can_run(config):
            raise BackendUnavailableError(
                f"backend {settings.backend!r} cannot run model {config.name}: it needs {spec.needs_file} weights"
            )
        return spec
    candidates = sorted(registry.values(), key=lambda s: -s.priority)
    if settings.device != "cpu":
        # ONNX Runtime on GPU needs onnxruntime-gpu; prefer a backend that really has the device.
        candidates.sort(key=lambda s: (s.name == "onnx" and not _ort_has_cuda(), -s.priority))
    for spec in candidates:
        if spec.is_available() and spec.can_run(config):
            return spec
    raise BackendUnavailableError(
        f"no installed backend can run model {config.name} (onnx file: {config.onnx_file}, "
        f"torch weights: {config.torch_weights}); registered: {sorted(registry)}"
    )


def _load_calibration(
    option: Calibration | str | Path | None,
    model_path: Path,
    config: ModelConfig,
    note: str | None = None,
    *,
    domain: str | None = None,
) -> tuple[Calibration, Path | None]:
    """The calibration to use: the explicit one, then the domain's slot (``crossrank calibrate
    --domain``), then the model folder's ``calibration.json``, then a packaged one, else a plain sigmoid;
    with the file it was read from (None for an explicit object or the plain sigmoid)."""
    if isinstance(option, Calibration):
        return option, None
    if option is not None:
        return load_calibration(option), Path(option)
    if domain is not None:
        from crossrank.models.domains import domain_calibration_path

        slot = domain_calibration_path(domain)
        if slot.is_file():
            calibration = load_calibration(slot)
            _note_foreign_calibration(calibration, config, slot)
            return calibration, slot
    candidate = model_path / CALIBRATION_FILENAME
    if candidate.is_file():
        return load_calibration(candidate), candidate
    packaged = packaged_calibration(config)
    if packaged is not None:
        return load_calibration(packaged), Path(packaged)
    logger.info(
        "model %s has no fitted calibration (no %s in %s): scores are a plain sigmoid of the logit, not "
        "calibrated probabilities; fit one with 'crossrank calibrate' or 'crossrank tune'%s",
        config.name,
        CALIBRATION_FILENAME,
        model_path,
        f" ({note})" if note else "",
    )
    return Calibration(), None


def _note_foreign_calibration(calibration: Calibration, config: ModelConfig, path: Path) -> None:
    """Warn when a domain's calibration was fitted on another model's scores."""
    scorer = calibration.provenance.get("scorer")
    fitted = scorer.get("model") if isinstance(scorer, Mapping) else None
    if _names_another_model(fitted, config):
        logger.warning(
            "the calibration in %s was fitted on scores of %s, not of %s@%s; its probabilities do not apply to "
            "this model (fit one for it with 'crossrank calibrate --domain')",
            path, fitted, config.name, config.revision,
        )


def _note_calibration_mismatch(loaded: LoadedModel) -> None:
    """Log when the calibration was fitted on scores produced differently from this reranker's."""
    fitted = loaded.calibration.provenance.get("scorer")
    if not isinstance(fitted, Mapping):
        return
    current = {
        "max_length": loaded.encoder.max_length,
        "long_documents": loaded.settings.long_documents,
        "activation_quantization": loaded.activation_quantization,
    }
    if "int8_kernels" in fitted:
        # Recorded only for graphs whose int8 scores depend on the CPU; compared only where recorded.
        from crossrank.quantization import int8_instruction_set

        current["int8_kernels"] = int8_instruction_set()
    differs = {key: (fitted.get(key), value) for key, value in current.items() if fitted.get(key) != value}
    if differs:
        logger.info(
            "calibration of %s was fitted on scores from other settings (fitted, now): %s; its probabilities are approximate",
            loaded.config.name,
            differs,
        )


def _ort_has_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()
