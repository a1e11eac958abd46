"""Scoring backends: ONNX Runtime (default) and PyTorch, behind one small interface."""

from __future__ import annotations

from crossrank.backends.base import BackendSpec, BatchTooLargeError, ScoringBackend

__all__ = ["BackendSpec", "ScoringBackend", "BatchTooLargeError"]
