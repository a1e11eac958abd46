"""``crossrank.json``: what a model folder holds and how to run it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from crossrank.errors import ConfigurationError, ModelIntegrityError, ModelNotFoundError, describe
from crossrank.models.files import atomic_write_text, cached_sha256

__all__ = ["ModelConfig", "MODEL_CONFIG_FILENAME", "QUANTIZATION_KINDS", "UNVERSIONED"]

MODEL_CONFIG_FILENAME = "crossrank.json"
MODEL_CONFIG_FORMAT = "crossrank-model"
MODEL_CONFIG_VERSION = 1
UNVERSIONED = "unversioned"
"""The revision of a model whose configuration names none (any local folder without crossrank.json)."""
QUANTIZATION_KINDS = ("none", "dynamic-int8", "per-token-int8", "static-int8")
_ONNX_CANDIDATES = ("model.onnx", "onnx/model.onnx")
_TORCH_WEIGHTS = ("model.safetensors",)
_SHA256 = re.compile(r"[0-9a-f]{1,64}")


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        family: The model family that scores it (``classifier``, ``qwen3-reranker``...; see
            :mod:`crossrank.families`), or None to choose from the model id and its files.
        instruction: The instruction an instruction-aware family's prompt uses (None: the
            family's default).

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
    family: str | None = None
    instruction: str | None = None

    def __post_init__(self) -> None:
        for name in ("name", "tokenizer_file", "revision"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"{name} must be a non-empty string; received {_short(value)}")
        for name in ("onnx_file", "torch_weights", "license", "origin", "family", "instruction"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigurationError(f"{name} must be a non-empty string or null; received {_short(value)}")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 8:
            raise ConfigurationError(f"max_length must be an int >= 8; received {_short(self.max_length)}")
        if not isinstance(self.quantization, str) or self.quantization not in QUANTIZATION_KINDS:
            raise ConfigurationError(
                f"quantization must be one of {QUANTIZATION_KINDS}; received {_short(self.quantization)}"
            )
        if not isinstance(self.files, dict):
            raise ConfigurationError(
                f"files must be an object mapping file paths to sha256 hex digests; received {_short(self.files)}"
            )
        for rel, digest in self.files.items():
            if not isinstance(rel, str) or not rel:
                raise ConfigurationError(f"files has a key that is not a file path: {_short(rel)}")
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                raise ConfigurationError(
                    f"files[{rel!r}] must be a sha256 hex digest (lower-case 0-9a-f); received {_short(digest)}"
                )
        if not isinstance(self.extra, dict):
            raise ConfigurationError(f"extra must be an object; received {_short(self.extra)}")
        for key in ("original_graph", "notice"):
            value = self.extra.get(key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigurationError(f"extra.{key} must be a file path string; received {_short(value)}")
        paths = {"tokenizer_file": self.tokenizer_file, "onnx_file": self.onnx_file, "torch_weights": self.torch_weights}
        paths.update({f"files[{rel!r}]": rel for rel in self.files})
        paths.update({f"extra.{k}": self.extra.get(k) for k in ("original_graph", "notice")})
        for where, rel in paths.items():
            if rel is not None and (Path(rel).is_absolute() or ".." in Path(rel).parts or "\x00" in rel):
                raise ConfigurationError(
                    f"{where}: model file paths must stay inside the model folder; received {rel!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        data = {"format": MODEL_CONFIG_FORMAT, "version": MODEL_CONFIG_VERSION, **asdict(self)}
        for optional in ("family", "instruction"):  # written only when set: older readers know no such keys
            if data[optional] is None:
                del data[optional]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"not a crossrank model config: expected a JSON object; received {describe(data)}")
        if data.get("format") != MODEL_CONFIG_FORMAT:
            raise ConfigurationError(
                f"not a crossrank model config: expected format={MODEL_CONFIG_FORMAT!r}; received {describe(data.get('format'))}"
            )
        if data.get("version") != MODEL_CONFIG_VERSION:
            raise ConfigurationError(
                f"unsupported model config version: expected {MODEL_CONFIG_VERSION}, received {data.get('version')!r}"
            )
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"format", "version"}
        if unknown:
            raise ConfigurationError(f"unknown keys in model config: {sorted(map(str, unknown))}")
        if "name" not in data:
            raise ConfigurationError("name is missing: every model config names its model")
        return cls(**{k: v for k, v in data.items() if k in known})

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
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                raise ModelIntegrityError(f"cannot read model config {path}: {exc}") from None
            try:
                return cls.from_dict(data)
            except ConfigurationError as exc:
                raise ConfigurationError(f"model config {path}: {exc}") from None
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
                hf_data = json.loads(hf_config.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError) as exc:
                raise ModelIntegrityError(f"cannot read {hf_config}: {exc}") from None
            if not isinstance(hf_data, dict):
                raise ModelIntegrityError(f"{hf_config} must hold a JSON object; received {_short(hf_data)}")
            max_length = hf_data.get("max_position_embeddings", 512)
            if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 8:
                raise ModelIntegrityError(
                    f"{hf_config}: max_position_embeddings must be an int >= 8; received {_short(max_length)}"
                )
        return cls(
            name=name or folder.name,
            onnx_file=onnx_file,
            torch_weights=torch_weights,
            max_length=max_length,
        )

    def verify(self, folder: str | Path, only: tuple[str | None, ...] | None = None) -> None:
        """Check that recorded files exist and match their sha256; raise naming the file.

        Hashes are computed once per file version per process (see
        :func:`crossrank.models.files.cached_sha256`), so verifying a model again is cheap.

        Args:
            folder: The model folder.
            only: Check only these recorded files (default: every file in ``files``).

        Raises:
            ModelIntegrityError: A recorded file is missing, unreadable or has another hash.
        """
        folder = Path(folder)
        for rel, expected in self.files.items():
            if only is not None and rel not in only:
                continue
            path = folder / rel
            if not path.is_file():
                raise ModelIntegrityError(f"model file {path} is missing")
            try:
                actual = cached_sha256(path)
            except OSError as exc:
                raise ModelIntegrityError(f"cannot read model file {path}: {exc}") from None
            if actual != expected:
                raise ModelIntegrityError(
                    f"model file {path} is corrupt or was modified: sha256 {actual} != recorded {expected}. "
                    f"Delete the folder and pull the model again."
                )
