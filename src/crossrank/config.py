"""One declarative reranker configuration: every option declared once.

:class:`RerankerConfig` is a frozen dataclass. Each of its fields is declared with
:func:`_option`, which records the option's default, how to read it from an environment
variable or a configuration file (``parse``), how to check a value given in Python
(``check``), a one-line help text, the group it belongs to and whether the command line and
the framework adapters expose it. Everything else is derived from these declarations: the
environment variable names (``CROSSRANK_<OPTION>``), ``crossrank config show``, the CLI flags
(:mod:`crossrank.cli.options`), the adapters' engine fields, ``to_dict``/``from_dict`` and the
option table in docs/options.md.

Precedence, the same in every entry point (engine, adapters, CLI):

1. an explicit argument,
2. the environment (``CROSSRANK_<OPTION>``), only when asked for,
3. the configuration file (TOML or YAML; ``CROSSRANK_CONFIG`` names one),
4. the default declared here.

:meth:`RerankerConfig.resolve` applies it. It reads the environment only when one is passed,
so internal callers (trainer, export gate, benchmarks, a server) build from an explicit
configuration that no stray ``CROSSRANK_*`` variable can change.

Example:
    >>> from crossrank.config import RerankerConfig
    >>> config, sources = RerankerConfig.resolve({"top_k": 3}, environ={"CROSSRANK_BACKEND": "onnx"})
    >>> config.top_k, sources["top_k"], config.backend, sources["backend"]
    (3, 'argument', 'onnx', 'environment (CROSSRANK_BACKEND)')
    >>> RerankerConfig(threshold=0.5).replace(threshold=False).threshold is None
    True
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import numbers
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossrank.errors import ConfigurationError, CrossRankError, describe, missing_dependency
from crossrank.models.sources import DEFAULT_MODEL

if TYPE_CHECKING:
    from crossrank.calibration import Calibration
    from crossrank.score_cache import ScoreCache

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "OTHER_VARIABLES",
    "GROUPS",
    "OptionSpec",
    "RerankerConfig",
    "env_name",
    "option_specs",
    "options_markdown",
    "read_config_file",
]

logger = logging.getLogger("crossrank")

CONFIG_ENV = "CROSSRANK_CONFIG"
ENV_PREFIX = "CROSSRANK_"

OTHER_VARIABLES: dict[str, str] = {
    "CROSSRANK_CONFIG": "the TOML/YAML configuration file to read",
    "CROSSRANK_HOME": "crossrank's cache folder (models, domains)",
    "CROSSRANK_OFFLINE": "1 forbids every download",
    "CROSSRANK_EMBEDDED_WHEEL": "a local copy of the wheel the embedded default model comes from",
    "CROSSRANK_QUIET": "1 silences the one-line notice before a model download",
    "CROSSRANK_EVAL_CACHE": "folder of crossrank eval's score cache",
    "CROSSRANK_DISABLE_PLUGIN_AUTOLOAD": "1 skips plugins registered through entry points",
}
"""``CROSSRANK_*`` variables that are not reranker options; any other one is a typo and is refused."""

GROUPS = ("model", "scoring", "long documents", "decision", "serving")
"""The option groups, in the order the documentation lists them."""

_NONE_WORDS = ("", "none", "null")
_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")

LONG_DOCUMENT_MODES = ("select", "truncate", "window")
POOLING_MODES = ("max", "mean")


# ----------------------------------------------------------------- parsers (text or file values)
def _is_none_word(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS)


def _parse_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string; received {describe(value)}")
    return value.strip()


def _parse_optional_text(name: str, value: object) -> str | None:
    return None if _is_none_word(value) else _parse_text(name, value)


def _parse_int(name: str, value: object) -> int:
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 30:
            raise ConfigurationError(f"{name} must be an integer; received a {len(text)}-character value")
        try:
            return int(text)
        except ValueError:
            raise ConfigurationError(f"{name} must be an integer; received {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an integer; received {describe(value)}")
    return value


def _parse_optional_int(name: str, value: object) -> int | None:
    return None if _is_none_word(value) else _parse_int(name, value)


def _parse_optional_float(name: str, value: object) -> float | None:
    if _is_none_word(value):
        return None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ConfigurationError(f"{name} must be a number; received {value!r}") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number; received {describe(value)}")
    else:
        number = float(value)
    if math.isnan(number):
        raise ConfigurationError(f"{name} must be a number; received NaN")
    return number


def _parse_float(name: str, value: object) -> float:
    number = _parse_optional_float(name, value)
    if number is None:
        raise ConfigurationError(f"{name} must be a number; received {describe(value)}")
    return number


def _parse_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ConfigurationError(f"{name} must be true or false (1/0, yes/no, on/off); received {describe(value)}")


def _parse_threshold(name: str, value: object) -> float | str | None:
    if value is None or value is False:
        return None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _NONE_WORDS or word in ("false", "off"):
            return None
        if word == "calibrated":
            return "calibrated"
    return _parse_optional_float(name, value)


def _parse_mapping(name: str, value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise ConfigurationError(f"{name} must be a JSON object; {reason} in {value[:60]!r}") from None
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{name} must be a mapping (a JSON object); received {describe(value)}")
    return dict(value)


# ----------------------------------------------------------------- checks (values given in Python)
def _check_text(name: str, value: object) -> str:
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty name or path; received {describe(value)}")
    return value


def _check_family(name: str, value: object) -> str | None:
    """A family name (checked against the registered families when the model loads), or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise ConfigurationError(f"{name} must be a model family name such as 'qwen3-reranker', or None; received {describe(value)}")
    return value


def _check_instruction(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string or None; received {describe(value)}")
    return value


def _check_device(name: str, value: object) -> str:
    if not isinstance(value, str) or not (value == "cpu" or value.startswith(("cuda", "mps"))):
        raise ConfigurationError(f"{name} must be 'cpu', 'cuda' or 'cuda:N'; received {describe(value)}")
    return value


def _check_int(minimum: int, *, optional: bool = False) -> Callable[[str, object], int | None]:
    def check(name: str, value: object) -> int | None:
        if value is None and optional:
            return None
        if _is_integer(value) and int(value) >= minimum:  # type: ignore[call-overload]
            return int(value)  # type: ignore[call-overload]
        expected = f"an int >= {minimum}" + (" or None" if optional else "")
        raise ConfigurationError(f"{name} must be {expected}; received {describe(value)}")

    return check


def _is_integer(value: object) -> bool:
    """A Python or NumPy integer; ``True``/``False`` are not numbers here."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def _check_choice(choices: tuple[str, ...]) -> Callable[[str, object], str]:
    def check(name: str, value: object) -> str:
        if value not in choices:
            raise ConfigurationError(f"{name} must be one of {choices}; received {describe(value)}")
        return value  # type: ignore[return-value]

    return check


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False; received {describe(value)}")
    return value


def plain_number(value: object) -> object:
    """A NumPy scalar as the Python number it holds; anything else unchanged (booleans stay booleans)."""
    if isinstance(value, numbers.Number) and not isinstance(value, (bool, int, float)) and hasattr(value, "item"):
        item = value.item()  # type: ignore[attr-defined]
        return value if isinstance(item, bool) else item
    return value


def check_threshold(name: str, value: object) -> float | str | None:
    """A threshold: a probability in [0, 1], ``"calibrated"``, or None/False for none (NumPy numbers accepted)."""
    if value is None or value is False:
        return None
    if value == "calibrated":
        return "calibrated"
    from crossrank.documents import validate_probability

    return validate_probability(plain_number(value), name)


def check_top_k(name: str, value: object) -> int | None:
    """A top-k: a positive int, or None/False for all (NumPy integers accepted)."""
    if value is None or value is False:
        return None
    from crossrank.documents import validate_top_k
    from crossrank.errors import CrossRankError

    try:
        return validate_top_k(plain_number(value))
    except CrossRankError as exc:
        raise type(exc)(str(exc).replace("top_k", name)) from None


def _parse_weight(name: str, value: object) -> float | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    return _parse_float(name, value)


def _check_weight(name: str, value: object) -> float | str:
    from crossrank.errors import InvalidInputError, InvalidInputTypeError
    from crossrank.fusion import validate_first_stage_weight

    try:
        return validate_first_stage_weight(plain_number(value), allow_auto=True)
    except (InvalidInputError, InvalidInputTypeError) as exc:
        raise ConfigurationError(str(exc)) from None


def _check_calibration(name: str, value: object) -> Any:
    from crossrank.calibration import Calibration

    if value is None or isinstance(value, Calibration):
        return value
    if isinstance(value, (str, Path)) and str(value).strip():
        return value
    raise ConfigurationError(f"{name} must be a Calibration or a path; received {describe(value)}")


def _check_mapping(name: str, value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{name} must be a mapping; received {describe(value)}")
    return dict(value)


def _check_timeout(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a number of seconds > 0; received {describe(value)}")
    return float(value)


def _check_fallback(name: str, value: object) -> Any:
    from crossrank.reranker import Reranker

    if value is None or callable(value) or isinstance(value, (RerankerConfig, Mapping, Reranker)):
        return value
    if isinstance(value, (str, Path)) and str(value).strip():
        return str(value)
    raise ConfigurationError(
        f"{name} must be a Reranker, a RerankerConfig, a model name or a callable (query, texts) -> scores; "
        f"received {describe(value)}"
    )


def _check_cache(name: str, value: object) -> Any:
    from crossrank.score_cache import ScoreCache

    if value is None or value is False or value is True or isinstance(value, ScoreCache):
        return None if value is False else value
    if isinstance(value, (str, Path)) and str(value).strip():
        return str(value)
    raise ConfigurationError(
        f"{name} must be a ScoreCache, 'memory', 'memory:N', an SQLite file path, True or None; received {describe(value)}"
    )


def _check_registered_name(kind: str) -> Callable[[str, object], str | None]:
    """The check of an option naming an entry of a model registry (``domains`` or ``profiles``)."""

    def check(name: str, value: object) -> str | None:
        if value is None:
            return None
        from crossrank.models.domains import DOMAINS
        from crossrank.models.profiles import PROFILES

        return (DOMAINS if kind == "domains" else PROFILES).validate_name(value)

    return check


# ----------------------------------------------------------------- declarations
@dataclass(frozen=True)
class OptionSpec:
    """How one option is read, checked and documented.

    Attributes:
        name: The option's name (a :class:`RerankerConfig` field and keyword argument).
        default: The built-in default.
        parse: Reads a value from an environment variable or a configuration file.
        check: Checks (and normalises) a value given in Python; raises ConfigurationError.
        help: One line for ``--help``, ``config show`` and docs/options.md.
        group: One of :data:`GROUPS`.
        cli: Whether commands that build a reranker expose it as ``--flag``.
        adapter: Whether the framework adapters expose it as their own field.
        data: Whether its value is plain JSON data (not an object such as a callable).
    """

    name: str
    default: Any
    parse: Callable[[str, object], Any]
    check: Callable[[str, object], Any]
    help: str
    group: str
    cli: bool = False
    adapter: bool = False

    @property
    def env(self) -> str:
        """The environment variable that sets this option."""
        return env_name(self.name)


def _option(
    default: Any,
    parse: Callable[[str, object], Any],
    check: Callable[[str, object], Any],
    help: str,
    group: str,
    *,
    cli: bool = False,
    adapter: bool = False,
) -> Any:
    spec = {"default": default, "parse": parse, "check": check, "help": help, "group": group, "cli": cli, "adapter": adapter}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"option": spec})
    return field(default=default, metadata={"option": spec})


def env_name(option: str) -> str:
    """The environment variable of an option: ``CROSSRANK_`` + the name in upper case."""
    return ENV_PREFIX + option.upper()


def _optional_probability(name: str, value: object) -> float | None:
    if value is None:
        return None
    from crossrank.documents import validate_probability

    return validate_probability(plain_number(value), name)


@dataclass(frozen=True)
class RerankerConfig:
    """Every option of a :class:`~crossrank.Reranker`, validated, immutable.

    Build it directly (values are checked), with :meth:`resolve` (explicit values, then the
    environment when passed, then a file, then the defaults), or from :meth:`from_dict`. A
    changed copy comes from :meth:`replace`; the original is never modified.

    Example:
        >>> from crossrank.config import RerankerConfig
        >>> config = RerankerConfig(max_length=256, threshold="calibrated")
        >>> config.replace(top_k=3).top_k, config.top_k
        (3, None)
        >>> RerankerConfig(batch_size=0)
        Traceback (most recent call last):
        ...
        crossrank.errors.ConfigurationError: batch_size must be an int >= 1; received int 0
    """

    # model
    model: str = _option(DEFAULT_MODEL, _parse_text, _check_text, "model folder, Hugging Face id or registered name", "model", cli=True, adapter=True)
    backend: str = _option("auto", _parse_text, _check_text, "auto, onnx, torch or a plugin backend", "model", cli=True, adapter=True)
    family: str | None = _option(None, _parse_optional_text, _check_family, "how pairs become model inputs and outputs a score: classifier, sentence-transformers, qwen3-reranker, bge-llm-reranker, mxbai-rerank-v2 or a plugin family (none: from the model)", "model", cli=True)
    instruction: str | None = _option(None, _parse_optional_text, _check_instruction, "task instruction of an instruction-aware family's prompt (none: the family's default)", "model", cli=True)
    device: str = _option("cpu", _parse_text, _check_device, "cpu, cuda or cuda:N", "model", cli=True, adapter=True)
    backend_options: dict[str, Any] = _option({}, _parse_mapping, _check_mapping, "backend-specific options (JSON object)", "model")
    calibration: Calibration | str | Path | None = _option(None, _parse_optional_text, _check_calibration, "calibration JSON file (none: the model's own)", "model")
    domain: str | None = _option(None, _parse_optional_text, _check_registered_name("domains"), "use the model registered for this domain", "model")
    profile: str | None = _option(None, _parse_optional_text, _check_registered_name("profiles"), "score with the speed profile registered under this name by 'crossrank distill --profile' (e.g. fast) instead of model", "model", cli=True, adapter=True)
    allow_download: bool = _option(True, _parse_bool, _check_bool, "whether a missing model may be downloaded", "model")
    # scoring
    max_length: int | None = _option(None, _parse_optional_int, _check_int(8, optional=True), "tokens per query/passage pair (none: the length the model's calibration was fitted at, 192 for the embedded default; else the model's own, at most 512)", "scoring", cli=True, adapter=True)
    max_query_length: int | None = _option(None, _parse_optional_int, _check_int(1, optional=True), "tokens kept from the query (none: half of max_length)", "scoring")
    batch_size: int = _option(32, _parse_int, _check_int(1), "most rows per model call", "scoring", cli=True, adapter=True)
    token_budget: int = _option(1024, _parse_int, _check_int(8), "most padded tokens per model call", "scoring", cli=True, adapter=True)
    show_progress: bool = _option(False, _parse_bool, _check_bool, "progress bar on stderr for long inputs", "scoring")
    # long documents
    long_documents: str = _option("select", _parse_text, _check_choice(LONG_DOCUMENT_MODES), "select, truncate or window", "long documents", cli=True, adapter=True)
    window_overlap: int | None = _option(None, _parse_optional_int, _check_int(0, optional=True), "tokens shared by consecutive windows", "long documents")
    window_pooling: str = _option("max", _parse_text, _check_choice(POOLING_MODES), "max or mean", "long documents", adapter=True)
    max_windows: int = _option(8, _parse_int, _check_int(1), "most windows per document", "long documents", adapter=True)
    # decision
    threshold: float | str | None = _option(None, _parse_threshold, check_threshold, "probability, 'calibrated' or none", "decision", cli=True)
    top_k: int | None = _option(None, _parse_optional_int, check_top_k, "documents returned per call (none: all)", "decision", cli=True)
    first_stage_weight: float | str = _option("auto", _parse_weight, _check_weight, "weight of the retriever's scores in the final order: 'auto' fuses with 0.3 when every candidate has a retriever score, 0 reranks alone", "decision", cli=True)
    # serving
    disabled: bool = _option(False, _parse_bool, _check_bool, "pass documents through untouched, in input order", "serving")
    fallback: Any = _option(None, _parse_optional_text, _check_fallback, "model served when the primary fails, times out or is unsure", "serving")
    primary_timeout: float | None = _option(None, _parse_optional_float, _check_timeout, "seconds the primary may take before the fallback serves", "serving")
    min_confidence: float | None = _option(None, _parse_optional_float, _optional_probability, "best calibrated score below this: the fallback serves", "serving")
    max_abandoned_calls: int = _option(2, _parse_int, _check_int(1), "primary calls past their deadline that may still run; beyond, the fallback serves at once", "serving")
    cache: ScoreCache | str | bool | None = _option(None, _parse_optional_text, _check_cache, "score cache: 'memory', 'memory:N' or an SQLite file path", "serving")

    def __post_init__(self) -> None:
        for spec in option_specs().values():
            object.__setattr__(self, spec.name, spec.check(spec.name, getattr(self, spec.name)))
        if self.fallback is None and (self.primary_timeout is not None or self.min_confidence is not None):
            raise ConfigurationError(
                "primary_timeout and min_confidence choose when the fallback serves; they need fallback= "
                f"(received primary_timeout={self.primary_timeout}, min_confidence={self.min_confidence})"
            )
        if self.threshold == "calibrated" and _is_callable_fallback(self.fallback):
            raise ConfigurationError(
                "threshold='calibrated' needs a calibrated model, and a callable fallback has none; "
                "pass a probability threshold or a Reranker fallback"
            )

    # ------------------------------------------------------------- building
    @classmethod
    def resolve(
        cls,
        explicit: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        file: str | Path | None = None,
    ) -> tuple[RerankerConfig, dict[str, str]]:
        """Apply the precedence: explicit > environment > file > default.

        Args:
            explicit: Options given as arguments. A ``None`` value counts as given (it is a
                real value: no threshold, the model's own length...); leave an option out to
                let lower sources fill it.
            environ: The environment to read (``os.environ`` for the process's). ``None``
                reads no environment at all, as internal callers need.
            file: A TOML/YAML file of options; default: the file ``environ`` names in
                ``CROSSRANK_CONFIG``, if any.

        Returns:
            The configuration and, for each option, where its value came from:
            ``"argument"``, ``"environment (CROSSRANK_X)"``, ``"file (path)"`` or ``"default"``.
            The file read, if any, is recorded under the key ``"config_file"`` of the sources
            only when one was read.

        Raises:
            ConfigurationError: For an unknown option or ``CROSSRANK_*`` variable, or a value
                that does not parse or check; the message names its source.
        """
        specs = option_specs()
        explicit = dict(explicit or {})
        unknown = sorted(set(explicit) - set(specs))
        if unknown:
            raise ConfigurationError(f"unknown option(s) {unknown}; known options: {sorted(specs)}")
        environ = {} if environ is None else environ
        _refuse_unknown_variables(environ, specs)
        if file is None and environ.get(CONFIG_ENV, "").strip():
            file = environ[CONFIG_ENV].strip()
        from_file = read_config_file(file) if file is not None else {}
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name, spec in specs.items():
            if name in explicit:
                values[name], sources[name] = explicit[name], "argument"
            elif spec.env in environ:
                try:
                    values[name] = spec.parse(name, environ[spec.env])
                except ConfigurationError as exc:
                    raise ConfigurationError(f"environment variable {spec.env}: {exc}") from None
                sources[name] = f"environment ({spec.env})"
            elif name in from_file:
                try:
                    values[name] = spec.parse(name, from_file[name])
                except ConfigurationError as exc:
                    raise ConfigurationError(f"{file}: {exc}") from None
                sources[name] = f"file ({file})"
            else:
                sources[name] = "default"
        try:
            config = cls(**values)
        except CrossRankError as exc:
            name = next((n for n in values if str(exc).startswith(n + " ")), None)
            where = sources.get(name or "", "")
            if where.startswith(("environment", "file")):
                raise ConfigurationError(f"{where}: {exc}") from None
            raise
        if file is not None:
            sources["config_file"] = str(file)
        return config, sources

    def replace(self, **changes: Any) -> RerankerConfig:
        """A checked copy with ``changes`` applied (``dataclasses.replace``)."""
        unknown = sorted(set(changes) - set(option_specs()))
        if unknown:
            raise ConfigurationError(f"unknown option(s) {unknown}; known options: {sorted(option_specs())}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every option as plain JSON-compatible values (objects are described, see :meth:`from_dict`)."""
        from crossrank.calibration import Calibration
        from crossrank.fallback import callable_reference
        from crossrank.score_cache import ScoreCache

        data: dict[str, Any] = {}
        for name in option_specs():
            value = getattr(self, name)
            if name == "calibration":
                if isinstance(value, Calibration):
                    value = {"inline": value.to_dict()}
                elif isinstance(value, Path):
                    value = str(value)
            elif name == "backend_options":
                value = dict(value)
            elif name == "fallback":
                value = _fallback_to_dict(value, callable_reference)
            elif name == "cache" and isinstance(value, ScoreCache):
                value = value.to_dict()
            data[name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **objects: Any) -> RerankerConfig:
        """Rebuild from :meth:`to_dict`; ``objects`` supplies what JSON cannot hold
        (``fallback`` callable or reranker, ``cache`` object, ``calibration`` object)."""
        from crossrank.calibration import Calibration

        if not isinstance(data, Mapping):
            raise ConfigurationError(f"a reranker configuration must be a mapping; received {describe(data)}")
        options = dict(data)
        calibration = options.get("calibration")
        if isinstance(calibration, Mapping):
            if not isinstance(calibration.get("inline"), Mapping):
                raise ConfigurationError(f"calibration must be a path or {{'inline': {{...}}}}; received {describe(calibration)}")
            options["calibration"] = Calibration.from_dict(calibration["inline"])
        fallback = options.get("fallback")
        if isinstance(fallback, Mapping) and "fallback" not in objects:
            if "reranker" in fallback:
                options["fallback"] = cls.from_dict(fallback["reranker"])
            else:
                raise ConfigurationError(
                    f"this configuration's fallback is the callable {fallback.get('callable')!r}; "
                    "pass it again: from_dict(data, fallback=function)"
                )
        if isinstance(options.get("cache"), Mapping) and "cache" not in objects:
            from crossrank.score_cache import cache_from_spec

            options["cache"] = cache_from_spec(options["cache"])
        options.update(objects)
        unknown = sorted(set(options) - set(option_specs()))
        if unknown:
            raise ConfigurationError(f"unknown option(s) {unknown}; known options: {sorted(option_specs())}")
        return cls(**options)

    def scorer_settings(self) -> dict[str, Any]:
        """The options that change a logit for a given model (see :func:`crossrank.engine.loading.scorer_id`)."""
        return {
            "family": self.family,
            "instruction": self.instruction,
            "device": self.device,
            "max_query_length": self.max_query_length,
            "long_documents": self.long_documents,
            "window_overlap": self.window_overlap,
            "window_pooling": self.window_pooling,
            "max_windows": self.max_windows,
        }


def _is_callable_fallback(value: object) -> bool:
    if value is None or isinstance(value, (str, RerankerConfig, Mapping)):
        return False
    from crossrank.reranker import Reranker

    return not isinstance(value, Reranker)


def _fallback_to_dict(value: object, reference: Callable[[Any], str]) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, RerankerConfig):
        return {"reranker": value.to_dict()}
    if isinstance(value, Mapping):
        return {"reranker": dict(value)}
    from crossrank.reranker import Reranker

    if isinstance(value, Reranker):
        return {"reranker": value.to_dict()}
    # Code is never loaded from a configuration: from_dict needs the callable passed again.
    return {"callable": reference(value)}


_SPECS: dict[str, OptionSpec] | None = None


def option_specs() -> dict[str, OptionSpec]:
    """Every option's :class:`OptionSpec`, in declaration order."""
    global _SPECS
    if _SPECS is None:
        _SPECS = {
            f.name: OptionSpec(name=f.name, **f.metadata["option"]) for f in dataclasses.fields(RerankerConfig)
        }
    return _SPECS


def _refuse_unknown_variables(environ: Mapping[str, str], specs: Mapping[str, OptionSpec]) -> None:
    known = {spec.env for spec in specs.values()} | set(OTHER_VARIABLES)
    unknown = sorted(name for name in environ if name.startswith(ENV_PREFIX) and name not in known)
    if unknown:
        import difflib

        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
        raise ConfigurationError(
            f"unknown environment variable(s) {', '.join(hints)}: expected one of the CROSSRANK_* variables "
            "that 'crossrank config show' lists; unset it or correct its name"
        )


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) configuration file.

    Options sit at the top level or under a ``crossrank`` table, not both. Unknown option
    names, keys that are not strings and options beside a ``crossrank`` table are refused so
    that a typo never passes silently.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"configuration file not found: expected a TOML or YAML file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - exercised on Python 3.10 only
            import tomli as tomllib
        try:
            data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise missing_dependency("pyyaml", "yaml", f"reading the YAML configuration file {path}") from None
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
            raise ConfigurationError(f"{path}: not valid YAML: {exc}") from None
        data = {} if data is None else data
    else:
        raise ConfigurationError(f"configuration file must end in .toml, .yaml or .yml; received {path.name}")
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{path}: expected a table of options; received {type(data).__name__}")
    not_text = [key for key in data if not isinstance(key, str)]
    if not_text:
        raise ConfigurationError(f"{path}: option names must be strings; received {describe(not_text[0])}")
    if "crossrank" in data:
        if not isinstance(data["crossrank"], Mapping):
            raise ConfigurationError(f"{path}: 'crossrank' must be a table of options; received {describe(data['crossrank'])}")
        beside = sorted(key for key in data if key != "crossrank")
        if beside:
            raise ConfigurationError(
                f"{path}: options {beside} stand outside the [crossrank] table and would be ignored; "
                "put every option inside it (or drop the table header)"
            )
        data = data["crossrank"]
        not_text = [key for key in data if not isinstance(key, str)]
        if not_text:
            raise ConfigurationError(f"{path}: option names must be strings; received {describe(not_text[0])}")
    known = option_specs()
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigurationError(f"{path}: unknown option(s) {unknown}; known options: {sorted(known)}")
    return dict(data)


def options_markdown() -> str:
    """The table of every option (group, name, environment variable, default, help), in Markdown.

    ``docs/options.md`` is this table; a test keeps the two equal.
    """
    lines = ["| group | option | environment | default | CLI | adapters | what it does |", "|---|---|---|---|---|---|---|"]
    for group in GROUPS:
        for spec in option_specs().values():
            if spec.group != group:
                continue
            default = "none" if spec.default is None else json.dumps(spec.default)
            flag = "`--" + spec.name.replace("_", "-") + "`" if spec.cli else ""
            lines.append(
                f"| {group} | `{spec.name}` | `{spec.env}` | `{default}` | {flag} | {'yes' if spec.adapter else ''} | {spec.help} |"
            )
    return "\n".join(lines) + "\n"
