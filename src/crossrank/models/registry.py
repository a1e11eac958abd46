"""Named model folders kept under ``crossrank_home()``: the registry behind domains and speed profiles.

A registry of kind ``domains`` keeps its models in ``<crossrank_home>/domains/NAME`` and its
index in ``<crossrank_home>/domains.json``; ``profiles`` likewise. Registering copies the folder
(atomically: a copy beside the target, then a rename), so the registered model does not change
when its training run is deleted or re-run.

Example:
    >>> from crossrank.models.registry import ModelRegistry
    >>> ModelRegistry("profiles", "speed profile").validate_name("fast")
    'fast'
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crossrank.errors import ConfigurationError, ModelIntegrityError, ModelNotFoundError
from crossrank.models.files import atomic_write_text, crossrank_home, ensure_directory

__all__ = ["ModelRegistry"]

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ModelRegistry:
    """One kind of named model folders (``domains``, ``profiles``).

    Attributes:
        kind: The folder and index name under ``crossrank_home()``.
        label: What one entry is called in messages (``domain``, ``speed profile``).
    """

    kind: str
    label: str

    def validate_name(self, name: object) -> str:
        """``name`` when it is a valid entry name, else a :class:`ConfigurationError`."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigurationError(
                f"{self.label} must be 1-64 lower-case letters, digits, '.', '_' or '-' starting with a letter or "
                f"digit; received {name!r}"
            )
        return name

    @property
    def index_file(self) -> Path:
        return crossrank_home() / f"{self.kind}.json"

    @property
    def folder(self) -> Path:
        return crossrank_home() / self.kind

    def read(self) -> dict[str, dict[str, Any]]:
        """All entries (name to path, source, base model, registration time and metrics)."""
        path = self.index_file
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelIntegrityError(f"cannot read the {self.label} registry {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != f"crossrank-{self.kind}" or not isinstance(data.get(self.kind), dict):
            raise ModelIntegrityError(f"{path} is not a crossrank {self.label} registry")
        return data[self.kind]

    def write(self, entries: Mapping[str, Any]) -> None:
        payload = {"format": f"crossrank-{self.kind}", "version": 1, self.kind: dict(entries)}
        atomic_write_text(self.index_file, json.dumps(payload, indent=2, sort_keys=True) + "\n")

    def register(
        self, name: str, model_dir: str | Path, *, base_model: str | None = None, metrics: Mapping[str, Any] | None = None
    ) -> Path:
        """Copy ``model_dir`` in under ``name`` (replacing a previous model) and return its path."""
        self.validate_name(name)
        source = Path(model_dir)
        if not (source / "tokenizer.json").is_file():
            raise ModelNotFoundError(f"{source} is not a model folder (no tokenizer.json)")
        target = ensure_directory(self.folder, f"the {self.label} registry") / name
        tmp = target.with_name(f".{name}.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(source, tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
        entries = self.read()
        entries[name] = {
            "path": str(target),
            "source": str(source),
            "base_model": base_model,
            "registered": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "metrics": {k: v for k, v in dict(metrics or {}).items() if isinstance(v, (int, float, str))},
        }
        self.write(entries)
        return target

    def model_path(self, name: str) -> Path | None:
        """The model folder registered as ``name``, or None when there is none."""
        self.validate_name(name)
        entry = self.read().get(name)
        if entry is None:
            return None
        path = Path(entry["path"])
        return path if (path / "tokenizer.json").is_file() else None

    def unregister(self, name: str) -> dict[str, Any] | None:
        """Drop ``name`` from the index and delete its model copy; its entry, or None when absent."""
        self.validate_name(name)
        entries = self.read()
        entry = entries.pop(name, None)
        if entry is None:
            return None
        self.write(entries)
        path = Path(entry["path"])
        if path.is_dir() and path.parent == self.folder:
            shutil.rmtree(path)
        return entry
