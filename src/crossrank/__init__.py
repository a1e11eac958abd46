"""crossrank: calibrated cross-encoder reranking for RAG pipelines.

Example:
    >>> import crossrank
    >>> reranker = crossrank.Reranker()  # loads the embedded default model on first use
"""

from __future__ import annotations

from crossrank.backends.base import BackendSpec, BatchTooLargeError, ScoringBackend
from crossrank.calibration import (
    Calibration,
    Calibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    SigmoidCalibrator,
    TemperatureCalibrator,
    load_calibration,
    save_calibration,
)
from crossrank.documents import Document
from crossrank.errors import (
    BackendUnavailableError,
    ConfigurationError,
    CrossRankError,
    InvalidInputError,
    InvalidInputTypeError,
    MissingDependencyError,
    ModelIntegrityError,
    ModelNotFoundError,
    PluginError,
)
from crossrank.models.config import ModelConfig
from crossrank.models.resolve import pull_model, resolve_model
from crossrank.models.sources import DEFAULT_MODEL, ModelSource, SourceEntry
from crossrank.plugins import hookimpl
from crossrank.reranker import Reranker
from crossrank.results import BatchShape, RerankResult, RerankStats, ScoredDocument

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "BackendSpec",
    "BackendUnavailableError",
    "BatchShape",
    "BatchTooLargeError",
    "Calibration",
    "Calibrator",
    "ConfigurationError",
    "CrossRankError",
    "Document",
    "InvalidInputError",
    "IsotonicCalibrator",
    "InvalidInputTypeError",
    "MissingDependencyError",
    "ModelConfig",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "ModelSource",
    "PlattCalibrator",
    "PluginError",
    "RerankResult",
    "RerankStats",
    "Reranker",
    "ScoredDocument",
    "ScoringBackend",
    "SigmoidCalibrator",
    "SourceEntry",
    "TemperatureCalibrator",
    "__version__",
    "hookimpl",
    "load_calibration",
    "pull_model",
    "resolve_model",
    "save_calibration",
]
