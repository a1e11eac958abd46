"""The public API is exactly what ``crossrank.__all__`` lists, and every name exists."""

from __future__ import annotations

import crossrank

EXPECTED = {
    "DEFAULT_MODEL", "BackendSpec", "BackendUnavailableError", "BatchShape", "BatchTooLargeError",
    "Calibration", "Calibrator", "ConfigurationError", "CrossRankError", "Document",
    "InvalidInputError", "InvalidInputTypeError", "IsotonicCalibrator", "MissingDependencyError", "ModelConfig",
    "ModelIntegrityError", "ModelNotFoundError", "ModelSource", "PlattCalibrator", "PluginError",
    "RerankResult", "RerankStats", "Reranker", "ScoredDocument", "ScoringBackend",
    "SigmoidCalibrator", "SourceEntry", "TemperatureCalibrator", "__version__", "hookimpl",
    "load_calibration", "pull_model", "resolve_model", "save_calibration",
}


def test_all_lists_the_public_api() -> None:
    assert set(crossrank.__all__) == EXPECTED


def test_every_exported_name_exists_and_public_names_are_exported() -> None:
    for name in crossrank.__all__:
        assert hasattr(crossrank, name), name
    public = {
        name for name, value in vars(crossrank).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("crossrank")
    }
    assert public <= set(crossrank.__all__), public - set(crossrank.__all__)


def test_error_hierarchy() -> None:
    assert issubclass(crossrank.InvalidInputError, crossrank.CrossRankError)
    assert issubclass(crossrank.InvalidInputError, ValueError)
    assert issubclass(crossrank.InvalidInputTypeError, TypeError)
    assert issubclass(crossrank.MissingDependencyError, ImportError)
