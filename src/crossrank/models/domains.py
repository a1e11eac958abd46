"""Per-domain models: a small JSON registry under ``crossrank_home()``.

``crossrank train --domain legal`` copies the finished model to
``<crossrank_home>/domains/legal`` and records it in ``<crossrank_home>/domains.json``;
``Reranker(domain="legal")`` then loads it, and falls back to its ``model`` (with a log line)
when the domain has none.

``crossrank calibrate --domain legal`` writes the domain's calibration to
``<crossrank_home>/domains/legal/calibration.json`` (:func:`domain_calibration_path`), the same
folder: beside the domain's model when it has one, alone otherwise. Registering a new model for
the domain replaces the folder and with it the calibration, which was fitted on the old model's
scores.

Example:
    >>> from crossrank.models.domains import list_domains
    >>> isinstance(list_domains(), dict)
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crossrank.models.registry import ModelRegistry

__all__ = ["domain_calibration_path", "domain_model_path", "domains_file", "list_domains", "register_domain", "remove_domain", "validate_domain_name"]

DOMAINS = ModelRegistry("domains", "domain")


def validate_domain_name(name: object) -> str:
    return DOMAINS.validate_name(name)


def domains_file() -> Path:
    return DOMAINS.index_file


def register_domain(
    name: str, model_dir: str | Path, *, base_model: str | None = None, metrics: Mapping[str, Any] | None = None
) -> Path:
    """Copy ``model_dir`` into the registry under ``name`` (replacing a previous model) and return its path."""
    return DOMAINS.register(name, model_dir, base_model=base_model, metrics=metrics)


def domain_model_path(name: str) -> Path | None:
    """The model folder registered for ``name``, or None when the domain has none."""
    return DOMAINS.model_path(name)


def domain_calibration_path(name: str) -> Path:
    """Where the calibration of domain ``name`` is kept (the file may not exist yet).

    Example:
        >>> domain_calibration_path("legal").parts[-3:]
        ('domains', 'legal', 'calibration.json')
    """
    from crossrank.calibration import CALIBRATION_FILENAME

    validate_domain_name(name)
    return DOMAINS.folder / name / CALIBRATION_FILENAME


def list_domains() -> dict[str, dict[str, Any]]:
    """All registered domains with their paths, base models and recorded metrics."""
    return DOMAINS.read()


def remove_domain(name: str) -> bool:
    """Unregister ``name`` and delete its model copy and calibration; False when it had neither."""
    if DOMAINS.unregister(name) is None:
        calibration = domain_calibration_path(name)
        if not calibration.is_file():
            return False
        calibration.unlink()  # a domain with a calibration and no model of its own
        try:
            calibration.parent.rmdir()
        except OSError:
            pass  # something else lives there; leave it
    return True
