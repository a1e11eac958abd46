"""Calibrators: from raw logits to probabilities, saved as versioned JSON beside the model.

A calibrator is a small object with ``transform(logits) -> probabilities`` and a JSON form.
Built-in kinds are registered through the same plugin hook third-party calibrators use
(``crossrank_calibrators``); :func:`load_calibration` looks the kind up in that registry, so a
calibration file can never name arbitrary code.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from crossrank.errors import ConfigurationError, ModelIntegrityError

__all__ = [
    "Calibrator",
    "SigmoidCalibrator",
    "PlattCalibrator",
    "TemperatureCalibrator",
    "Calibration",
    "CALIBRATION_FILENAME",
    "CALIBRATION_FORMAT_VERSION",
    "load_calibration",
    "save_calibration",
    "packaged_calibration",
]

CALIBRATION_FILENAME = "calibration.json"
CALIBRATION_FORMAT = "crossrank-calibration"
CALIBRATION_FORMAT_VERSION = 1


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    exp_x = np.exp(x[~positive])
    out[~positive] = exp_x / (1.0 + exp_x)
    return out


class Calibrator(ABC):
    """Maps raw model logits to calibrated probabilities.

    Subclasses set ``kind`` (the name used in JSON) and implement ``transform``,
    ``to_dict`` and ``from_dict``. Register third-party kinds with the
    ``crossrank_calibrators`` plugin hook.
    """

    kind: ClassVar[str]

    @abstractmethod
    def transform(self, logits: np.ndarray) -> np.ndarray:
        """Return probabilities in [0, 1] with the same shape as ``logits``."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """JSON-serialisable parameters (without ``kind``)."""

    @classmethod
    @abstractmethod
    def from_params(cls, params: Mapping[str, Any]) -> Calibrator:
        """Rebuild from :meth:`params`; raise ``ConfigurationError`` on bad values."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params()}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params()})"


def _finite_float(params: Mapping[str, Any], key: str) -> float:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"calibrator parameter '{key}' must be a finite number; received {value!r}")
    return float(value)


class SigmoidCalibrator(Calibrator):
    """The uncalibrated default: ``sigmoid(logit)``.

    Example:
        >>> import numpy as np
        >>> SigmoidCalibrator().transform(np.array([0.0])).tolist()
        [0.5]
    """

    kind = "sigmoid"

    def transform(self, logits: np.ndarray) -> np.ndarray:
        return _stable_sigmoid(logits)

    def params(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SigmoidCalibrator:
        return cls()


class PlattCalibrator(Calibrator):
    """Platt scaling: ``sigmoid(a * logit + b)``.

    Example:
        >>> import numpy as np
        >>> round(float(PlattCalibrator(a=0.5, b=-1.0).transform(np.array([2.0]))[0]), 3)
        0.5
    """

    kind = "platt"

    def __init__(self, a: float, b: float) -> None:
        self.a = _finite_float({"a": a}, "a")
        self.b = _finite_float({"b": b}, "b")

    def transform(self, logits: np.ndarray) -> np.ndarray:
        return _stable_sigmoid(self.a * np.asarray(logits, dtype=np.float64) + self.b)

    def params(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PlattCalibrator:
        return cls(a=_finite_float(params, "a"), b=_finite_float(params, "b"))


class TemperatureCalibrator(Calibrator):
    """Temperature scaling: ``sigmoid(logit / T)`` with ``T > 0``.

    Example:
        >>> import numpy as np
        >>> round(float(TemperatureCalibrator(2.0).transform(np.array([0.0]))[0]), 2)
        0.5
    """

    kind = "temperature"

    def __init__(self, temperature: float) -> None:
        temperature = _finite_float({"temperature": temperature}, "temperature")
        if temperature <= 0:
            raise ConfigurationError(f"temperature must be > 0; received {temperature}")
        self.temperature = temperature

    def transform(self, logits: np.ndarray) -> np.ndarray:
        return _stable_sigmoid(np.asarray(logits, dtype=np.float64) / self.temperature)

    def params(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TemperatureCalibrator:
        return cls(_finite_float(params, "temperature"))


@dataclass
class Calibration:
    """A calibrator plus the decision rules fitted with it, as stored in ``calibration.json``.

    Attributes:
        calibrator: Maps logits to probabilities.
        threshold: Fitted probability threshold used by ``threshold="calibrated"``, if any.
        abstention: Parameters of a fitted query-level abstention rule, if any (JSON object).
        provenance: Free-form description of the data the calibration was fitted on.
    """

    calibrator: Calibrator = field(default_factory=SigmoidCalibrator)
    threshold: float | None = None
    abstention: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT,
            "version": CALIBRATION_FORMAT_VERSION,
            "calibrator": self.calibrator.to_dict(),
            "threshold": self.threshold,
            "abstention": self.abstention,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], registry: Mapping[str, type[Calibrator]] | None = None
    ) -> Calibration:
        if not isinstance(data, Mapping) or data.get("format") != CALIBRATION_FORMAT:
            raise ConfigurationError(
                f"not a crossrank calibration: expected an object with format={CALIBRATION_FORMAT!r}"
            )
        version = data.get("version")
        if version != CALIBRATION_FORMAT_VERSION:
            raise ConfigurationError(
                f"unsupported calibration format version: expected {CALIBRATION_FORMAT_VERSION}, "
                f"received {version!r}"
            )
        spec = data.get("calibrator")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("kind"), str):
            raise ConfigurationError("calibration 'calibrator' must be an object with a 'kind' string")
        if registry is None:
            from crossrank.plugins import calibrator_registry

            registry = calibrator_registry()
        kind = spec["kind"]
        if kind not in registry:
            raise ConfigurationError(
                f"unknown calibrator kind {kind!r}; registered kinds: {sorted(registry)}"
            )
        calibrator = registry[kind].from_params({k: v for k, v in spec.items() if k != "kind"})
        threshold = data.get("threshold")
        if threshold is not None:
            threshold = _finite_float({"threshold": threshold}, "threshold")
            if not 0.0 <= threshold <= 1.0:
                raise ConfigurationError(f"calibration threshold must be in [0, 1]; received {threshold}")
        abstention = data.get("abstention")
        if abstention is not None and not isinstance(abstention, Mapping):
            raise ConfigurationError("calibration 'abstention' must be an object or null")
        provenance = data.get("provenance") or {}
        if not isinstance(provenance, Mapping):
            raise ConfigurationError("calibration 'provenance' must be an object")
        return cls(
            calibrator=calibrator,
            threshold=threshold,
            abstention=dict(abstention) if abstention is not None else None,
            provenance=dict(provenance),
        )


def packaged_calibration(config: object) -> Path | None:
    """The calibration shipped inside crossrank for a model revision, if there is one.

    Files live in ``crossrank/calibrations/`` named after the model name and revision
    (``/`` replaced by ``--``), e.g. ``cross-encoder--ms-marco-MiniLM-L-12-v2@<revision>.json``.
    A calibration is only valid for the exact weights it was fitted on, hence the revision.
    """
    from importlib import resources

    name = getattr(config, "name", "").replace("/", "--")
    revision = getattr(config, "revision", "").replace("/", "--")
    candidate = resources.files("crossrank.calibrations").joinpath(f"{name}@{revision}.json")
    return Path(str(candidate)) if candidate.is_file() else None


def load_calibration(path: str | Path) -> Calibration:
    """Read and validate a calibration JSON file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelIntegrityError(f"cannot read calibration file {path}: {exc}") from None
    try:
        return Calibration.from_dict(data)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None


def save_calibration(calibration: Calibration, path: str | Path) -> Path:
    """Write a calibration atomically as JSON and return its path."""
    from crossrank.models.files import atomic_write_text

    path = Path(path)
    atomic_write_text(path, json.dumps(calibration.to_dict(), indent=2, sort_keys=True) + "\n")
    return path
