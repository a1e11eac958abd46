"""The interface every scoring backend implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from crossrank.errors import CrossRankError
from crossrank.models.config import ModelConfig

__all__ = ["ScoringBackend", "BackendSpec", "BatchTooLargeError", "logits_to_scores"]


class BatchTooLargeError(CrossRankError, MemoryError):
    """The device ran out of memory for this batch; the engine halves the batch and retries."""


@runtime_checkable
class ScoringBackend(Protocol):
    """Runs a cross-encoder on encoded pairs.

    ``score`` receives int64 arrays of shape ``(rows, length)`` (padding marked by
    ``attention_mask == 0``) and returns one float32 relevance logit per row.
    ``batch_invariant`` is False when a row's score may depend on the other rows of its
    batch (per-tensor dynamic quantization); the engine then scores rows one at a time.
    A backend may also set ``concurrent_calls`` (default 1 when absent): the engine then runs
    that many ``score`` calls at once from worker threads, so ``score`` must be thread-safe.
    """

    name: str
    batch_invariant: bool

    def score(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray
    ) -> np.ndarray: ...

    def close(self) -> None: ...


BackendFactory = Callable[..., ScoringBackend]


@dataclass(frozen=True)
class BackendSpec:
    """How to build a backend, registered through the ``crossrank_backends`` hook.

    Attributes:
        name: Name users pass as ``Reranker(backend=...)``.
        factory: Called as ``factory(model_dir=Path, config=ModelConfig, device=str,
            options=dict)`` and returns a :class:`ScoringBackend`.
        is_available: Cheap check that the backend's packages are installed.
        needs_file: ``"onnx"`` or ``"torch"``: which weights the model folder must have, or
            ``None`` when the backend finds its own.
        priority: ``backend="auto"`` picks the highest-priority backend that can run the model.
        description: One line for ``crossrank models list`` and error messages.
        accepts_family: The factory takes a ``family=`` keyword: the model's
            :class:`~crossrank.families.ModelFamily`, for backends that build the model
            themselves (the torch backend). Others get rows the family encoded and return what
            the model outputs.
    """

    name: str
    factory: BackendFactory
    is_available: Callable[[], bool] = lambda: True
    needs_file: Literal["onnx", "torch"] | None = None
    priority: int = 0
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    accepts_family: bool = False

    def can_run(self, config: ModelConfig) -> bool:
        if self.needs_file == "onnx":
            return config.onnx_file is not None
        if self.needs_file == "torch":
            return config.torch_weights is not None
        return True

    def build(
        self, model_dir: Path, config: ModelConfig, device: str, options: Mapping[str, Any], *, family: Any = None
    ) -> ScoringBackend:
        if self.accepts_family and family is not None:
            return self.factory(model_dir=model_dir, config=config, device=device, options=dict(options), family=family)
        return self.factory(model_dir=model_dir, config=config, device=device, options=dict(options))


def logits_to_scores(logits: np.ndarray) -> np.ndarray:
    """Reduce model output to one logit per row: ``(B,)``/``(B,1)`` as is, ``(B,2)`` as l1 - l0."""
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim == 1:
        return logits
    if logits.ndim == 2 and logits.shape[1] == 1:
        return logits[:, 0]
    if logits.ndim == 2 and logits.shape[1] == 2:
        return logits[:, 1] - logits[:, 0]
    raise CrossRankError(f"expected model output of shape (B,), (B,1) or (B,2); received {logits.shape}")
