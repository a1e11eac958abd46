"""Calibrators: from raw logits to probabilities, saved as versioned JSON beside the model.

A calibrator is a small object with ``transform(logits) -> probabilities`` and a JSON form.
Built-in kinds are registered through the same plugin hook third-party calibrators use
(``crossrank_calibrators``); :func:`load_calibration` looks the kind up in that registry, so a
calibration file can never name arbitrary code.
"""

from __future__ import annotations

import json
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from crossrank.errors import ConfigurationError, InvalidInputError, ModelIntegrityError, describe

__all__ = [
    "CALIBRATION_FILENAME",
    "CALIBRATION_FORMAT_VERSION",
    "FITTABLE_KINDS",
    "Calibration",
    "Calibrator",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "SigmoidCalibrator",
    "TemperatureCalibrator",
    "fit_calibrator",
    "fit_isotonic",
    "fit_platt",
    "fit_temperature",
    "load_calibration",
    "packaged_calibration",
    "save_calibration",
]

CALIBRATION_FILENAME = "calibration.json"
CALIBRATION_FORMAT = "crossrank-calibration"
CALIBRATION_FORMAT_VERSION = 1
_CALIBRATION_KEYS = frozenset({"format", "version", "calibrator", "threshold", "abstention", "provenance"})


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


class IsotonicCalibrator(Calibrator):
    """A monotone, piecewise-linear map from logit to probability (fitted by isotonic regression).

    ``knots`` are increasing logits and ``values`` the non-decreasing probabilities at them;
    logits between knots are interpolated linearly and logits outside take the nearest end value.

    Example:
        >>> import numpy as np
        >>> iso = IsotonicCalibrator(knots=[-2.0, 0.0, 2.0], values=[0.1, 0.4, 0.9])
        >>> iso.transform(np.array([-5.0, 1.0, 5.0])).round(3).tolist()
        [0.1, 0.65, 0.9]
    """

    kind = "isotonic"

    def __init__(self, knots: Sequence[float], values: Sequence[float]) -> None:
        knots_array = np.asarray(knots, dtype=np.float64).reshape(-1)
        values_array = np.asarray(values, dtype=np.float64).reshape(-1)
        if knots_array.size == 0 or knots_array.size != values_array.size:
            raise ConfigurationError(
                f"isotonic calibrator needs as many knots as values (at least one); "
                f"received {knots_array.size} knots and {values_array.size} values"
            )
        if not (np.all(np.isfinite(knots_array)) and np.all(np.isfinite(values_array))):
            raise ConfigurationError("isotonic calibrator knots and values must be finite numbers")
        if np.any(np.diff(knots_array) <= 0):
            raise ConfigurationError("isotonic calibrator knots must be strictly increasing")
        if np.any(np.diff(values_array) < 0) or values_array[0] < 0 or values_array[-1] > 1:
            raise ConfigurationError("isotonic calibrator values must be non-decreasing probabilities in [0, 1]")
        self.knots = knots_array
        self.values = values_array

    def transform(self, logits: np.ndarray) -> np.ndarray:
        logits = np.asarray(logits, dtype=np.float64)
        return np.interp(logits, self.knots, self.values)

    def params(self) -> dict[str, Any]:
        return {"knots": [float(x) for x in self.knots], "values": [float(y) for y in self.values]}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> IsotonicCalibrator:
        knots, values = params.get("knots"), params.get("values")
        if not isinstance(knots, list) or not isinstance(values, list):
            raise ConfigurationError(
                f"isotonic calibrator needs lists 'knots' and 'values'; received {type(knots).__name__} "
                f"and {type(values).__name__}"
            )
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in [*knots, *values]):
            raise ConfigurationError("isotonic calibrator knots and values must be numbers")
        return cls(knots=knots, values=values)


# ----------------------------------------------------------------- fitting
FITTABLE_KINDS = ("platt", "temperature", "isotonic")


def _check_fit_data(logits: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(logits, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if x.size != y.size:
        raise InvalidInputError(f"need one label per logit; received {x.size} logits and {y.size} labels")
    if x.size < 2:
        raise InvalidInputError(f"need at least 2 labelled scores to fit a calibrator; received {x.size}")
    if not np.all(np.isfinite(x)):
        raise InvalidInputError("logits must be finite numbers")
    if np.any((y < 0) | (y > 1)) or not np.all(np.isfinite(y)):
        raise InvalidInputError("labels must be 0/1 (or probabilities in [0, 1])")
    if y.min() == y.max():
        raise InvalidInputError("labels must contain both relevant and non-relevant examples")
    return x, y


def fit_platt(logits: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray, *, l2: float = 1e-6) -> PlattCalibrator:
    """Fit ``sigmoid(a * logit + b)`` by maximum likelihood (Newton's method).

    Example:
        >>> fit_platt([-2.0, -1.0, 1.0, 2.0], [0, 1, 0, 1]).a > 0
        True
    """
    x, y = _check_fit_data(logits, labels)
    a, b = 1.0, 0.0
    for _ in range(100):
        p = _stable_sigmoid(a * x + b)
        w = np.maximum(p * (1 - p), 1e-12)
        grad = np.array([np.sum((p - y) * x) + l2 * a, np.sum(p - y)])
        hess = np.array([[np.sum(w * x * x) + l2, np.sum(w * x)], [np.sum(w * x), np.sum(w) + 1e-12]])
        step = np.linalg.solve(hess, grad)
        # Halve the step until the loss stops increasing: Newton can overshoot on separable data.
        loss = _log_loss(a * x + b, y) + 0.5 * l2 * a * a
        scale = 1.0
        while scale > 1e-6:
            na, nb = a - scale * step[0], b - scale * step[1]
            if _log_loss(na * x + nb, y) + 0.5 * l2 * na * na <= loss + 1e-12:
                break
            scale /= 2
        a, b = a - scale * step[0], b - scale * step[1]
        if np.max(np.abs(scale * step)) < 1e-10:
            break
    return PlattCalibrator(a=float(a), b=float(b))


def fit_temperature(logits: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray) -> TemperatureCalibrator:
    """Fit the temperature ``T`` of ``sigmoid(logit / T)`` by maximum likelihood (bounded 1-D search).

    Example:
        >>> fit_temperature([-4.0, -2.0, 2.0, 4.0], [0, 1, 0, 1]).temperature > 1
        True
    """
    x, y = _check_fit_data(logits, labels)
    # The loss is unimodal in log T; golden-section search over T in [0.01, 100].
    low, high = math.log(0.01), math.log(100.0)
    ratio = (math.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return _log_loss(x / math.exp(log_t), y)

    c, d = high - ratio * (high - low), low + ratio * (high - low)
    fc, fd = loss(c), loss(d)
    for _ in range(200):
        if fc < fd:
            high, d, fd = d, c, fc
            c = high - ratio * (high - low)
            fc = loss(c)
        else:
            low, c, fc = c, d, fd
            d = low + ratio * (high - low)
            fd = loss(d)
        if high - low < 1e-9:
            break
    return TemperatureCalibrator(math.exp((low + high) / 2))


def fit_isotonic(
    logits: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray, *, min_block: int = 1
) -> IsotonicCalibrator:
    """Fit a non-decreasing map by pool-adjacent-violators on the sorted logits.

    Each pooled block becomes one knot at its mean logit with the block's positive rate, so the
    fitted curve is piecewise linear between block centres. ``min_block`` merges blocks smaller
    than that many examples into a neighbour, which keeps the curve from chasing single points.

    Example:
        >>> fit_isotonic([0.0, 1.0, 2.0, 3.0], [0, 1, 0, 1]).values.tolist()
        [0.0, 0.5, 1.0]
    """
    x, y = _check_fit_data(logits, labels)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    # Equal logits must share one value: start from one block per distinct logit.
    sums: list[float] = []
    counts: list[float] = []
    xsums: list[float] = []
    for value, label in zip(x, y):
        if xsums and counts[-1] and value == xsums[-1] / counts[-1]:
            sums[-1] += label
            counts[-1] += 1
            xsums[-1] += value
        else:
            sums.append(float(label))
            counts.append(1.0)
            xsums.append(float(value))
    blocks: list[list[float]] = []  # [label sum, count, logit sum]
    for block in zip(sums, counts, xsums):
        blocks.append(list(block))
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1] = [blocks[-1][0] + last[0], blocks[-1][1] + last[1], blocks[-1][2] + last[2]]
    if min_block > 1:
        # Merging neighbours of a monotone sequence keeps it monotone.
        merged: list[list[float]] = []
        pending = [0.0, 0.0, 0.0]
        for block in blocks:
            pending = [pending[0] + block[0], pending[1] + block[1], pending[2] + block[2]]
            if pending[1] >= min_block:
                merged.append(pending)
                pending = [0.0, 0.0, 0.0]
        if pending[1]:
            if merged:
                merged[-1] = [merged[-1][0] + pending[0], merged[-1][1] + pending[1], merged[-1][2] + pending[2]]
            else:
                merged.append(pending)
        blocks = merged
    knots = [b[2] / b[1] for b in blocks]
    values = [b[0] / b[1] for b in blocks]
    return IsotonicCalibrator(knots=knots, values=values)


def fit_calibrator(kind: str, logits: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray, **options: Any) -> Calibrator:
    """Fit a calibrator of ``kind`` (``platt``, ``temperature`` or ``isotonic``) to labelled logits."""
    if kind == "platt":
        return fit_platt(logits, labels, **options)
    if kind == "temperature":
        return fit_temperature(logits, labels, **options)
    if kind == "isotonic":
        return fit_isotonic(logits, labels, **options)
    raise ConfigurationError(f"cannot fit calibrator kind {kind!r}; fittable kinds: {FITTABLE_KINDS}")


def _log_loss(z: np.ndarray, y: np.ndarray) -> float:
    # log(1 + e^z) - y z, computed without overflow.
    return float(np.sum(np.logaddexp(0.0, z) - y * z))


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

    def __post_init__(self) -> None:
        # A calibration built in code is held to the same rules as one read from a file.
        if not isinstance(self.calibrator, Calibrator):
            raise ConfigurationError(f"field 'calibrator': expected a Calibrator; received {describe(self.calibrator)}")
        if self.threshold is not None:
            value = self.threshold
            if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
                value = float(value)  # NumPy scalars from a fit are numbers too
            threshold = _finite_float({"threshold": value}, "threshold")
            if not 0.0 <= threshold <= 1.0:
                raise ConfigurationError(f"field 'threshold': calibration threshold must be in [0, 1]; received {threshold}")
            self.threshold = threshold
        if self.abstention is not None:
            from crossrank.abstention import validate_rule

            self.abstention = validate_rule(self.abstention, "abstention")
        if not isinstance(self.provenance, Mapping):
            raise ConfigurationError(f"field 'provenance': calibration 'provenance' must be an object; received {describe(self.provenance)}")

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], registry: Mapping[str, type[Calibrator]] | None = None
    ) -> Calibration:
        """Rebuild a calibration from its JSON form, checking every field.

        Raises:
            ConfigurationError: Naming the field that is missing, unknown or out of range.
        """
        if not isinstance(data, Mapping) or data.get("format") != CALIBRATION_FORMAT:
            raise ConfigurationError(
                f"not a crossrank calibration: expected an object with format={CALIBRATION_FORMAT!r}"
            )
        unknown_keys = set(data) - _CALIBRATION_KEYS
        if unknown_keys:
            raise ConfigurationError(
                f"unknown keys in calibration: {sorted(map(str, unknown_keys))}; expected some of {sorted(_CALIBRATION_KEYS)}"
            )
        version = data.get("version")
        if type(version) is not int or version != CALIBRATION_FORMAT_VERSION:
            raise ConfigurationError(
                f"field 'version': unsupported calibration format version: expected {CALIBRATION_FORMAT_VERSION}, "
                f"received {describe(version)}"
            )
        spec = data.get("calibrator")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("kind"), str):
            raise ConfigurationError(
                f"field 'calibrator': calibration 'calibrator' must be an object with a 'kind' string; received {describe(spec)}"
            )
        if registry is None:
            from crossrank.plugins import calibrator_registry

            registry = calibrator_registry()
        kind = spec["kind"]
        if kind not in registry:
            raise ConfigurationError(
                f"field 'calibrator.kind': unknown calibrator kind {kind!r}; registered kinds: {sorted(registry)}"
            )
        try:
            calibrator = registry[kind].from_params({k: v for k, v in spec.items() if k != "kind"})
        except ConfigurationError as exc:
            raise ConfigurationError(f"field 'calibrator': {exc}") from None
        except (ValueError, TypeError) as exc:
            # A third-party calibrator that refuses its parameters with a builtin error.
            raise ConfigurationError(f"field 'calibrator': invalid parameters for calibrator kind {kind!r}: {exc}") from None
        # A key nothing reads is a typo or tampering; refuse it rather than ignore it silently.
        unknown_params = set(spec) - {"kind"} - set(calibrator.params())
        if unknown_params:
            raise ConfigurationError(
                f"field 'calibrator': unknown parameters for calibrator kind {kind!r}: {sorted(map(str, unknown_params))}; "
                f"expected {sorted(calibrator.params())}"
            )
        threshold = data.get("threshold")
        if threshold is not None:
            try:
                threshold = _finite_float({"threshold": threshold}, "threshold")
            except ConfigurationError as exc:
                raise ConfigurationError(f"field 'threshold': {exc}; received {describe(threshold)}") from None
            if not 0.0 <= threshold <= 1.0:
                raise ConfigurationError(f"field 'threshold': calibration threshold must be in [0, 1]; received {threshold}")
        abstention = data.get("abstention")
        if abstention is not None:
            from crossrank.abstention import validate_rule

            if not isinstance(abstention, Mapping):
                raise ConfigurationError(
                    f"field 'abstention': calibration 'abstention' must be an object or null; received {describe(abstention)}"
                )
            abstention = validate_rule(abstention, "abstention")
        provenance = data.get("provenance")
        if provenance is None:
            provenance = {}
        if not isinstance(provenance, Mapping):
            raise ConfigurationError(
                f"field 'provenance': calibration 'provenance' must be an object; received {describe(provenance)}"
            )
        return cls(
            calibrator=calibrator,
            threshold=threshold,
            abstention=abstention,
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
    from crossrank.documents import parse_json

    path = Path(path)
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, InvalidInputError) as exc:
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
