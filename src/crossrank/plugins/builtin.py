"""crossrank's own backends, model sources, calibrators and model families, registered like any plugin."""

from __future__ import annotations

from crossrank.backends.base import BackendSpec
from crossrank.calibration import (
    Calibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    SigmoidCalibrator,
    TemperatureCalibrator,
)
from crossrank.models.sources import EmbeddedWheelSource, HubSource, ModelSource
from crossrank.plugins import hookimpl


def _onnx_available() -> bool:
    return True  # onnxruntime is a core dependency


def _torch_available() -> bool:
    from importlib.util import find_spec

    return find_spec("torch") is not None and find_spec("transformers") is not None


def _make_onnx(**kwargs):  # type: ignore[no-untyped-def]
    from crossrank.backends.onnx_backend import OnnxBackend

    return OnnxBackend(**kwargs)


def _make_torch(**kwargs):  # type: ignore[no-untyped-def]
    from crossrank.backends.torch_backend import TorchBackend

    return TorchBackend(**kwargs)


@hookimpl
def crossrank_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="onnx",
            factory=_make_onnx,
            is_available=_onnx_available,
            needs_file="onnx",
            priority=100,
            description="ONNX Runtime (default; CPU, or CUDA with onnxruntime-gpu)",
        ),
        BackendSpec(
            name="torch",
            factory=_make_torch,
            is_available=_torch_available,
            needs_file="torch",
            priority=50,
            description="PyTorch + transformers (GPU, training); pip install 'crossrank[torch]'",
            accepts_family=True,
        ),
    ]


@hookimpl
def crossrank_model_sources() -> list[ModelSource]:
    return [EmbeddedWheelSource(), HubSource()]


@hookimpl
def crossrank_calibrators() -> list[type[Calibrator]]:
    return [SigmoidCalibrator, PlattCalibrator, TemperatureCalibrator, IsotonicCalibrator]


@hookimpl
def crossrank_families() -> list[object]:
    from crossrank.families import builtin_families

    return list(builtin_families())
