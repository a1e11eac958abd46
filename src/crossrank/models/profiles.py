"""Speed profiles: faster models registered under a name, chosen with ``Reranker(profile=NAME)``.

``crossrank distill CONFIG --profile fast`` copies the finished student (with its calibration,
fitted on its own scores) to ``<crossrank_home>/profiles/fast`` and records it in
``<crossrank_home>/profiles.json``. ``Reranker(profile="fast")`` (or ``CROSSRANK_PROFILE=fast``,
or ``--profile fast``) then scores with it instead of ``model``. Unlike a domain, a profile that
is not registered is an error, not a fallback: asking for speed and silently getting the full
model would hide the difference.

Example:
    >>> from crossrank.models.profiles import list_profiles
    >>> isinstance(list_profiles(), dict)
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crossrank.errors import ModelNotFoundError
from crossrank.models.registry import ModelRegistry

__all__ = ["PROFILES", "list_profiles", "profile_model_path", "register_profile", "remove_profile", "validate_profile_name"]

PROFILES = ModelRegistry("profiles", "speed profile")


def validate_profile_name(name: object) -> str:
    return PROFILES.validate_name(name)


def register_profile(
    name: str, model_dir: str | Path, *, base_model: str | None = None, metrics: Mapping[str, Any] | None = None
) -> Path:
    """Copy ``model_dir`` into the profile registry under ``name`` and return its path."""
    return PROFILES.register(name, model_dir, base_model=base_model, metrics=metrics)


def profile_model_path(name: str) -> Path:
    """The model folder of speed profile ``name``.

    Raises:
        ModelNotFoundError: ``name`` is not registered (the message says where it looked and how
            to make it).
    """
    path = PROFILES.model_path(name)
    if path is None:
        registered = sorted(PROFILES.read())
        raise ModelNotFoundError(
            f"speed profile {name!r} is not registered; looked in {PROFILES.index_file} and {PROFILES.folder / name} "
            f"(registered: {registered or 'none'}). Make it with 'crossrank distill CONFIG --profile {name}', e.g. "
            "training/configs/scifact-l6-fast.yaml for 'fast'"
        )
    return path


def list_profiles() -> dict[str, dict[str, Any]]:
    """All registered speed profiles with their paths, base models and recorded metrics."""
    return PROFILES.read()


def remove_profile(name: str) -> bool:
    """Unregister ``name`` and delete its model copy; False when it was not registered."""
    return PROFILES.unregister(name) is not None
