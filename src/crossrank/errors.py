"""Exception types raised by crossrank.

Every error crossrank raises on purpose derives from :class:`CrossRankError`. Errors about
bad input also derive from the matching builtin (``ValueError`` or ``TypeError``) so that
generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "CrossRankError",
    "InvalidInputError",
    "InvalidInputTypeError",
    "ConfigurationError",
    "ModelNotFoundError",
    "ModelIntegrityError",
    "BackendUnavailableError",
    "MissingDependencyError",
    "PluginError",
]


def describe(value: object, limit: int = 60) -> str:
    """A short, safe description of a received value for error messages."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(value).__name__} {text}"


class CrossRankError(Exception):
    """Base class of every error crossrank raises on purpose."""


class InvalidInputError(CrossRankError, ValueError):
    """An argument has the right type but an unusable value (empty query, NaN threshold...)."""


class InvalidInputTypeError(CrossRankError, TypeError):
    """An argument has the wrong type (a document that is neither text nor a text holder...)."""


class ConfigurationError(CrossRankError, ValueError):
    """A constructor option or configuration file is invalid."""


class ModelNotFoundError(CrossRankError, LookupError):
    """No model source could provide the requested model."""


class ModelIntegrityError(CrossRankError, ValueError):
    """A model file is missing, corrupt, truncated or does not match its recorded hash."""


class BackendUnavailableError(CrossRankError, RuntimeError):
    """The requested backend is unknown or cannot run in this environment."""


class MissingDependencyError(CrossRankError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


class PluginError(CrossRankError, RuntimeError):
    """A plugin returned something crossrank cannot use."""


def missing_dependency(package: str, extra: str, purpose: str) -> MissingDependencyError:
    """Build the standard error for an optional dependency that is not installed."""
    return MissingDependencyError(
        f"{purpose} needs the optional package '{package}', which is not installed. "
        f"Install it with: pip install 'crossrank[{extra}]'"
    )
