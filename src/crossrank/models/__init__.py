"""Model files, their configuration, the model cache and the sources that fill it."""

from __future__ import annotations

from crossrank.models.config import ModelConfig
from crossrank.models.files import model_fingerprint
from crossrank.models.resolve import resolve_model
from crossrank.models.sources import ModelSource

__all__ = ["ModelConfig", "ModelSource", "model_fingerprint", "resolve_model"]
