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

import json
import re
import shutil
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crossrank.errors import ConfigurationError, ModelIntegrityError, ModelNotFoundError
from crossrank.models.files import atomic_write_text, crossrank_home, ensure_directory

__all__ = ["domain_calibration_path", "domain_model_path", "domains_file", "list_domains", "register_domain", "remove_domain", "validate_domain_name"]

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_FORMAT = "crossrank-domains"


def validate_domain_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"domain must be 1-64 lower-case letters, digits, '.', '_' or '-' starting with a letter or digit; received {name!r}"
        )
    return name


def domains_file() -> Path:
    return crossrank_home() / "domains.json"


def _read() -> dict[str, dict[str, Any]]:
    path = domains_file()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelIntegrityError(f"cannot read the domain registry {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("domains"), dict):
        raise ModelIntegrityError(f"{path} is not a crossrank domain registry")
    return data["domains"]


def _write(domains: Mapping[str, Any]) -> None:
    payload = {"format": _FORMAT, "version": 1, "domains": dict(domains)}
    atomic_write_text(domains_file(), json.dumps(payload, indent=2, sort_keys=True) + "\n")


def register_domain(
    name: str, model_dir: str | Path, *, base_model: str | None = None, metrics: Mapping[str, Any] | None = None
) -> Path:
    """Copy ``model_dir`` into the registry under ``name`` (replacing a previous model) and return its path."""
    validate_domain_name(name)
    source = Path(model_dir)
    if not (source / "tokenizer.json").is_file():
        raise ModelNotFoundError(f"{source} is not a model folder (no tokenizer.json)")
    target = ensure_directory(crossrank_home() / "domains", "the domain registry") / name
    tmp = target.with_name(f".{name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(source, tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    domains = _read()
    domains[name] = {
        "path": str(target),
        "source": str(source),
        "base_model": base_model,
        "registered": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": {k: v for k, v in dict(metrics or {}).items() if isinstance(v, (int, float, str))},
    }
    _write(domains)
    return target


def domain_model_path(name: str) -> Path | None:
    """The model folder registered for ``name``, or None when the domain has none."""
    validate_domain_name(name)
    entry = _read().get(name)
    if entry is None:
        return None
    path = Path(entry["path"])
    return path if (path / "tokenizer.json").is_file() else None


def domain_calibration_path(name: str) -> Path:
    """Where the calibration of domain ``name`` is kept (the file may not exist yet).

    Example:
        >>> domain_calibration_path("legal").parts[-3:]
        ('domains', 'legal', 'calibration.json')
    """
    from crossrank.calibration import CALIBRATION_FILENAME

    validate_domain_name(name)
    return crossrank_home() / "domains" / name / CALIBRATION_FILENAME


def list_domains() -> dict[str, dict[str, Any]]:
    """All registered domains with their paths, base models and recorded metrics."""
    return _read()


def remove_domain(name: str) -> bool:
    """Unregister ``name`` and delete its model copy and calibration; False when it had neither."""
    validate_domain_name(name)
    domains = _read()
    entry = domains.pop(name, None)
    if entry is None:
        calibration = domain_calibration_path(name)
        if not calibration.is_file():
            return False
        calibration.unlink()  # a domain with a calibration and no model of its own
        try:
            calibration.parent.rmdir()
        except OSError:
            pass  # something else lives there; leave it
        return True
    _write(domains)
    path = Path(entry["path"])
    if path.is_dir() and path.parent == crossrank_home() / "domains":
        shutil.rmtree(path)
    return True
