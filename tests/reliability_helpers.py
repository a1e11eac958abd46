"""Real plugin components for the reliability tests: backends that count or limit model calls.

They wrap the real ONNX backend of a real model and are registered through a private plugin
manager, exactly as a third-party backend would be.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from crossrank import BackendSpec, BatchTooLargeError, hookimpl
from crossrank.plugins import new_plugin_manager


class CountingBackend:
    """The ONNX backend, counting model calls and recording batch shapes."""

    def __init__(self, inner: Any, max_rows: int | None = None) -> None:
        self.inner = inner
        self.name = "counting"
        self.batch_invariant = inner.batch_invariant
        self.max_rows = max_rows
        self.calls = 0
        self.refused = 0
        self.shapes: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def score(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        with self._lock:
            self.calls += 1
            if self.max_rows is not None and input_ids.shape[0] > self.max_rows:
                self.refused += 1
                raise BatchTooLargeError(f"{input_ids.shape[0]} rows exceed the simulated device's {self.max_rows}")
            self.shapes.append(tuple(input_ids.shape))
        return self.inner.score(input_ids, attention_mask, token_type_ids)

    def close(self) -> None:
        self.inner.close()


class CountingPlugin:
    """Registers ``backend="counting"``; keeps every backend it built in ``built``."""

    def __init__(self, max_rows: int | None = None) -> None:
        self.max_rows = max_rows
        self.built: list[CountingBackend] = []

    def _factory(self, *, model_dir: Path, config: Any, device: str, options: dict[str, Any]) -> CountingBackend:
        from crossrank.backends.onnx_backend import OnnxBackend

        backend = CountingBackend(OnnxBackend(model_dir, config, device, options), self.max_rows)
        self.built.append(backend)
        return backend

    @hookimpl
    def crossrank_backends(self) -> list[BackendSpec]:
        return [BackendSpec(name="counting", factory=self._factory, needs_file="onnx", description="counts calls")]

    @property
    def calls(self) -> int:
        return sum(b.calls for b in self.built)


def counting_manager(max_rows: int | None = None) -> tuple[Any, CountingPlugin]:
    """A private plugin manager (built-ins only, no entry points) with a :class:`CountingPlugin`."""
    manager = new_plugin_manager(load_entry_points=False)
    plugin = CountingPlugin(max_rows)
    manager.register(plugin, name="counting-test-plugin")
    return manager, plugin
