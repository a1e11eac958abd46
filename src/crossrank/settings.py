"""Reranker options from explicit arguments, environment variables and a configuration file.

Every option a :class:`~crossrank.Reranker` accepts as plain data can also come from an
environment variable (``CROSSRANK_`` + the option name in upper case, e.g.
``CROSSRANK_MODEL``, ``CROSSRANK_THRESHOLD``, ``CROSSRANK_DISABLED``) or from a TOML or YAML
file named by ``CROSSRANK_CONFIG`` (or passed as ``config_file=``). Precedence, highest first:

1. an explicit argument,
2. the environment,
3. the configuration file,
4. the built-in default.

Example:
    >>> from crossrank.settings import resolve_settings
    >>> effective = resolve_settings({"top_k": 3}, environ={"CROSSRANK_BACKEND": "onnx"})
    >>> effective.values["top_k"], effective.sources["top_k"]
    (3, 'argument')
    >>> effective.values["backend"], effective.sources["backend"]
    ('onnx', 'environment (CROSSRANK_BACKEND)')
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossrank.errors import ConfigurationError, describe, missing_dependency
from crossrank.models.sources import DEFAULT_MODEL

__all__ = [
    "UNSET",
    "CONFIG_ENV",
    "ENV_PREFIX",
    "OPTIONS",
    "EffectiveSettings",
    "resolve_settings",
    "read_config_file",
    "env_name",
]

CONFIG_ENV = "CROSSRANK_CONFIG"
ENV_PREFIX = "CROSSRANK_"


class _Unset:
    """Marks an argument the caller did not give, so lower-precedence sources may fill it."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

_NONE_WORDS = ("", "none", "null")
_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string; received {describe(value)}")
    return value.strip()


def _optional_text(name: str, value: object) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
        return None
    return _text(name, value)


def _int(name: str, value: object) -> int:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigurationError(f"{name} must be an integer; received {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an integer; received {describe(value)}")
    return value


def _optional_int(name: str, value: object) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
        return None
    return _int(name, value)


def _optional_float(name: str, value: object) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
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


def _float(name: str, value: object) -> float:
    number = _optional_float(name, value)
    if number is None:
        raise ConfigurationError(f"{name} must be a number; received {describe(value)}")
    return number


def _bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ConfigurationError(f"{name} must be true or false (1/0, yes/no, on/off); received {describe(value)}")


def _threshold(name: str, value: object) -> float | str | None:
    if value is None or value is False:
        return None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _NONE_WORDS or word in ("false", "off"):
            return None
        if word == "calibrated":
            return "calibrated"
    return _optional_float(name, value)


def _mapping(name: str, value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{name} must be a JSON object; {exc.msg} in {value!r}") from None
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{name} must be a mapping (a JSON object); received {describe(value)}")
    return dict(value)


@dataclass(frozen=True)
class Option:
    """One configurable option: its default and how to read it from text or file values."""

    name: str
    default: Any
    parse: Callable[[str, object], Any]
    help: str


OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option("model", DEFAULT_MODEL, _text, "model folder, Hugging Face id or registered name"),
        Option("backend", "auto", _text, "auto, onnx, torch or a plugin backend"),
        Option("device", "cpu", _text, "cpu, cuda or cuda:N"),
        Option("max_length", None, _optional_int, "tokens per query/passage pair (none: the model's limit)"),
        Option("max_query_length", None, _optional_int, "tokens kept from the query"),
        Option("batch_size", 32, _int, "most rows per model call"),
        Option("token_budget", 1024, _int, "most padded tokens per model call"),
        Option("long_documents", "select", _text, "select, truncate or window"),
        Option("window_overlap", None, _optional_int, "tokens shared by consecutive windows"),
        Option("window_pooling", "max", _text, "max or mean"),
        Option("max_windows", 8, _int, "most windows per document"),
        Option("threshold", None, _threshold, "probability, 'calibrated' or none"),
        Option("top_k", None, _optional_int, "documents returned per call (none: all)"),
        Option("first_stage_weight", 0.0, _float, "weight of the retriever's scores in the final order (0: reranker alone)"),
        Option("calibration", None, _optional_text, "path of a calibration JSON file"),
        Option("backend_options", {}, _mapping, "backend-specific options (JSON object)"),
        Option("allow_download", True, _bool, "whether a missing model may be downloaded"),
        Option("show_progress", False, _bool, "progress bar on stderr for long inputs"),
        Option("disabled", False, _bool, "pass documents through untouched, in input order"),
        Option("fallback", None, _optional_text, "model served when the primary fails, times out or is unsure"),
        Option("primary_timeout", None, _optional_float, "seconds the primary may take before the fallback serves"),
        Option("min_confidence", None, _optional_float, "best calibrated score below this: the fallback serves"),
        Option("cache", None, _optional_text, "score cache: 'memory', 'memory:N' or an SQLite file path"),
        Option("domain", None, _optional_text, "use the model registered for this domain"),
    )
}


def env_name(option: str) -> str:
    """The environment variable of an option: ``CROSSRANK_`` + the name in upper case."""
    return ENV_PREFIX + option.upper()


@dataclass(frozen=True)
class EffectiveSettings:
    """The value of every option and where it came from.

    Attributes:
        values: Option name to its effective value.
        sources: Option name to ``"argument"``, ``"environment (CROSSRANK_X)"``,
            ``"file (path)"`` or ``"default"``.
        config_file: The configuration file that was read, if any.
    """

    values: dict[str, Any]
    sources: dict[str, str]
    config_file: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "config_file": str(self.config_file) if self.config_file else None,
            "options": {
                name: {"value": _jsonable(self.values[name]), "source": self.sources[name]} for name in self.values
            },
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) configuration file.

    Options sit at the top level, or under a ``[crossrank]`` table. Unknown option names are
    rejected so that a typo never passes silently.
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
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{path}: not valid YAML: {exc}") from None
        data = {} if data is None else data
    else:
        raise ConfigurationError(f"configuration file must end in .toml, .yaml or .yml; received {path.name}")
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{path}: expected a table of options; received {type(data).__name__}")
    if isinstance(data.get("crossrank"), Mapping):
        data = data["crossrank"]
    unknown = sorted(set(data) - set(OPTIONS))
    if unknown:
        raise ConfigurationError(f"{path}: unknown option(s) {unknown}; known options: {sorted(OPTIONS)}")
    return dict(data)


def resolve_settings(
    explicit: Mapping[str, Any] | None = None,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> EffectiveSettings:
    """Combine explicit arguments, the environment, a configuration file and the defaults.

    Args:
        explicit: Options given as arguments; values that are :data:`UNSET` count as not given.
        config_file: A TOML/YAML file; default: the file named by ``CROSSRANK_CONFIG``, if set.
        environ: The environment to read (default: ``os.environ``).

    Returns:
        The effective value and source of every option in :data:`OPTIONS`. Values from the
        environment and the file are parsed and type-checked here; explicit arguments are
        passed through as given (the constructor validates them).
    """
    environ = os.environ if environ is None else environ
    explicit = {k: v for k, v in (explicit or {}).items() if v is not UNSET}
    unknown = sorted(set(explicit) - set(OPTIONS))
    if unknown:
        raise ConfigurationError(f"unknown option(s) {unknown}; known options: {sorted(OPTIONS)}")
    if config_file is None and environ.get(CONFIG_ENV, "").strip():
        config_file = environ[CONFIG_ENV].strip()
    from_file = read_config_file(config_file) if config_file is not None else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, option in OPTIONS.items():
        variable = env_name(name)
        if name in explicit:
            values[name], sources[name] = explicit[name], "argument"
        elif variable in environ:
            try:
                values[name] = option.parse(name, environ[variable])
            except ConfigurationError as exc:
                raise ConfigurationError(f"environment variable {variable}: {exc}") from None
            sources[name] = f"environment ({variable})"
        elif name in from_file:
            try:
                values[name] = option.parse(name, from_file[name])
            except ConfigurationError as exc:
                raise ConfigurationError(f"{config_file}: {exc}") from None
            sources[name] = f"file ({config_file})"
        else:
            default = option.default
            values[name] = dict(default) if isinstance(default, dict) else default
            sources[name] = "default"
    return EffectiveSettings(values, sources, Path(config_file) if config_file is not None else None)
