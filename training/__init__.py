"""Fine-tuning, calibration and export of cross-encoders (``pip install 'crossrank[train]'``).

Importing this package does not import torch; each entry point imports what it needs.

Example:
    >>> from crossrank.training import load_config, train
    >>> result = train(load_config("train.yaml"))  # doctest: +SKIP
    >>> result.model_dir  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["CurriculumConfig", "DataSpec", "LoraConfig", "NegativesConfig", "TrainConfig", "distill", "import_onnx", "load_config", "scan_float_groups", "train"]

_LAZY = {
    "TrainConfig": "crossrank.training.config",
    "NegativesConfig": "crossrank.training.config",
    "CurriculumConfig": "crossrank.training.config",
    "LoraConfig": "crossrank.training.config",
    "load_config": "crossrank.training.config",
    "DataSpec": "crossrank.training.data",
    "train": "crossrank.training.trainer",
    "import_onnx": "crossrank.training.onnx_import",
    "distill": "crossrank.training.distill",
    "scan_float_groups": "crossrank.training.quantization_scan",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crossrank.training' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
