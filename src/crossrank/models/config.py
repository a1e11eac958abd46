"""``crossrank.json``: what a model folder holds and how to run it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from crossrank.errors import ConfigurationError, ModelIntegrityError, ModelNotFoundError
from crossrank.models.files import atomic_write_text, sha256_file

__all__ = ["ModelConfig", "MODEL_CONFIG_FILENAME", "QUANTIZATION_KINDS", "UNVERSIONED"]

MODEL_CONFIG_FILENAME = "crossrank.json"
MODEL_CONFIG_FORMAT = "crossrank-model"
MODEL_CONFIG_VERSION = 1
UNVERSIONED = "unversioned"
"""The revision of a model whose configuration names none (any local folder without crossrank.json)."""
QUANTIZATION_KINDS = ("none", "dynamic-int8", "per-token-int8", "static-int8")
_ONNX_CANDIDATES = ("model.onnx", "onnx/model.onnx")
_TORCH_WEIGHTS = ("model.safetensors",)


@dataclass
class ModelConfig:
    """Description of a model folder, stored as ``crossrank.json`` (or detected).

    Attributes:
        name: Identifier shown in results and stats.
        revision: Version string; part of every cache key that depends on the model.
        onnx_file: Relative path of the ONNX graph, if any.
        torch_weights: Relative path of the safetensors weights (Hugging Face layout), if any.
        tokenizer_file: Relative path of ``tokenizer.json``.
        max_length: Longest input the model accepts, in tokens.
        quantization: ``"none"``, ``"dynamic-int8"`` (one activation scale per tensor: not
            batch-invariant, so the engine scores pairs one by one), ``"per-token-int8"`` or
            ``"static-int8"`` (activation ranges fixed from calibration data; batch-invariant).
        license: SPDX id of the weights' license.
        origin: Where the files came from.
        files: Expected sha256 of files, checked on load.
        extra: Anything else worth keeping (provenance, notes).

    Example:
        >>> ModelConfig(name="demo", tokenizer_file="tokenizer.json").max_length
        512
    """

    name: str
    tokenizer_file: str = "tokenizer.json"
    onnx_file: str | None = None
    torch_weights: str | None = None
    revision: str = UNVERSIONED
    max_length: int = 512
    quantization: str = "none"
    license: str | None = None
    origin: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError(f"model name must be a non-empty str; received {self.name!r}")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 8:
            raise ConfigurationError(f"max_length must be an int >= 8; received {self.max_length!r}")
        if self.quantization not in QUANTIZATION_KINDS:
            raise ConfigurationError(
                f"quantization must be one of {QUANTIZATION_KINDS}; received {self.quantization!r}"
            )
        for rel in (self.tokenizer_file, self.onnx_file, self.torch_weights, *self.files):
            if rel is not None and (Path(rel).is_absolute() or ".." in Path(rel).parts):
                raise ConfigurationError(f"model file paths must stay inside the model folder; received {rel!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": MODEL_CONFIG_FORMAT, "version": MODEL_CONFIG_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        if not isinstance(data, Mapping) or data.get("format") != MODEL_CONFIG_FORMAT:
            raise ConfigurationError(f"not a crossrank model config: expected format={MODEL_CONFIG_FORMAT!r}")
        if data.get("version") != MODEL_CONFIG_VERSION:
            raise ConfigurationError(
                f"unsupported model config version: expected {MODEL_CONFIG_VERSION}, received {data.get('version')!r}"
            )
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"format", "version"}
        if unknown:
            raise ConfigurationError(f"unknown keys in model config: {sorted(unknown)}")
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise ConfigurationError(f"invalid model config: {exc}") from None

    def save(self, folder: str | Path) -> Path:
        return atomic_write_text(
            Path(folder) / MODEL_CONFIG_FILENAME, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        )

    @classmethod
    def load(cls, folder: str | Path, name: str | None = None) -> ModelConfig:
        """Read ``crossrank.json`` from ``folder``, or detect the layout of a plain model folder."""
        folder = Path(folder)
        path = folder / MODEL_CONFIG_FILENAME
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ModelIntegrityError(f"cannot read model config {path}: {exc}") from None
            try:
                return cls.from_dict(data)
            except ConfigurationError as exc:
                raise ConfigurationError(f"{path}: {exc}") from None
        return cls.detect(folder, name=name)

    @classmethod
    def detect(cls, folder: str | Path, name: str | None = None) -> ModelConfig:
        """Build a config for a Hugging Face-style folder (tokenizer.json + ONNX and/or safetensors)."""
        folder = Path(folder)
        if not (folder / "tokenizer.json").is_file():
            raise ModelNotFoundError(f"{folder} is not a model folder: it has no tokenizer.json")
        onnx_file = next((c for c in _ONNX_CANDIDATES if (folder / c).is_file()), None)
        torch_weights = next((c for c in _TORCH_WEIGHTS if (folder / c).is_file()), None)
        if onnx_file is None and torch_weights is None:
            raise ModelNotFoundError(
                f"{folder} has no model weights: expected one of {_ONNX_CANDIDATES + _TORCH_WEIGHTS}"
            )
        max_length = 512
        hf_config = folder / "config.json"
        if hf_config.is_file():
            try:
                max_length = int(json.loads(hf_config.read_text()).get("max_position_embeddings", 512))
            except (OSError, ValueError, json.JSONDecodeError) as exc:
                raise ModelIntegrityError(f"cannot read {hf_config}: {exc}") from None
        return cls(
            name=name or folder.name,
            onnx_file=onnx_file,
            torch_weights=torch_weights,
            max_length=max_length,
        )

    def verify(self, folder: str | Path, only: tuple[str, ...] | None = None) -> None:
        """Check that recorded files exist and match their sha256; raise naming the file."""
        folder = Path(folder)
        for rel, expected in self.files.items():
            if only is not None and rel not in only:
                continue
            path = folder / rel
            if not path.is_file():
                raise ModelIntegrityError(f"model file {path} is missing")
            actual = sha256_file(path)
            if actual != expected:
                raise ModelIntegrityError(
                    f"model file {path} is corrupt or was modified: sha256 {actual} != recorded {expected}. "
                    f"Delete the folder and pull the model again."
                )
