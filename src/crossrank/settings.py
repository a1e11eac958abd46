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

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossrank.config import (
    CONFIG_ENV,
    ENV_PREFIX,
    OptionSpec,
    RerankerConfig,
    env_name,
    option_specs,
    read_config_file,
)

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


class _Unset:
    """Marks an argument the caller did not give, so lower-precedence sources may fill it."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

Option = OptionSpec

OPTIONS: dict[str, OptionSpec] = option_specs()
"""Every option, declared once on :class:`crossrank.config.RerankerConfig`."""


@dataclass(frozen=True)
class EffectiveSettings:
    """The value of every option and where it came from.

    Attributes:
        values: Option name to its effective value.
        sources: Option name to ``"argument"``, ``"environment (CROSSRANK_X)"``,
            ``"file (path)"`` or ``"default"``.
        config_file: The configuration file that was read, if any.
        config: The checked :class:`~crossrank.config.RerankerConfig` these values form.
    """

    values: dict[str, Any]
    sources: dict[str, str]
    config_file: Path | None = None
    config: RerankerConfig | None = None

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


def resolve_settings(
    explicit: Mapping[str, Any] | None = None,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> EffectiveSettings:
    """Combine explicit arguments, the environment, a configuration file and the defaults.

    This is :meth:`RerankerConfig.resolve <crossrank.config.RerankerConfig.resolve>` for user
    entry points: it reads the process environment unless ``environ`` is given.

    Args:
        explicit: Options given as arguments; values that are :data:`UNSET` count as not given.
        config_file: A TOML/YAML file; default: the file named by ``CROSSRANK_CONFIG``, if set.
        environ: The environment to read (default: ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    given = {k: v for k, v in (explicit or {}).items() if v is not UNSET}
    config, sources = RerankerConfig.resolve(given, environ=environ, file=config_file)
    read = sources.pop("config_file", None)
    values = {name: getattr(config, name) for name in OPTIONS}
    return EffectiveSettings(values, sources, Path(read) if read is not None else None, config)
