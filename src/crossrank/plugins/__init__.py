"""The plugin manager: built-ins plus third-party plugins from the ``crossrank`` entry points.

Set ``CROSSRANK_DISABLE_PLUGIN_AUTOLOAD=1`` to skip entry-point plugins (built-ins stay).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import pluggy

from crossrank.errors import PluginError
from crossrank.plugins import hookspecs

if TYPE_CHECKING:
    from crossrank.backends.base import BackendSpec
    from crossrank.calibration import Calibrator
    from crossrank.families.base import ModelFamily
    from crossrank.models.sources import ModelSource

__all__ = [
    "hookimpl",
    "ENTRY_POINT_GROUP",
    "AUTOLOAD_ENV",
    "new_plugin_manager",
    "get_plugin_manager",
    "backend_registry",
    "model_sources",
    "calibrator_registry",
    "family_registry",
]

ENTRY_POINT_GROUP = "crossrank"
AUTOLOAD_ENV = "CROSSRANK_DISABLE_PLUGIN_AUTOLOAD"
hookimpl = pluggy.HookimplMarker("crossrank")

_default: pluggy.PluginManager | None = None
_lock = threading.Lock()


def new_plugin_manager(load_entry_points: bool | None = None) -> pluggy.PluginManager:
    """A fresh manager with the built-in plugin and, unless disabled, entry-point plugins."""
    from crossrank.plugins import builtin

    manager = pluggy.PluginManager("crossrank")
    manager.add_hookspecs(hookspecs)
    manager.register(builtin, name="crossrank.builtin")
    if load_entry_points is None:
        load_entry_points = not os.environ.get(AUTOLOAD_ENV)
    if load_entry_points:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return manager


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, created on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = new_plugin_manager()
        return _default


def _collect(results: list[list[object]], hook: str) -> list[object]:
    # pluggy returns the last-registered plugin's results first; registration order reads better.
    flat: list[object] = []
    for items in reversed(results):
        if items is None:
            continue
        if not isinstance(items, (list, tuple)):
            raise PluginError(f"hook {hook} must return a list; a plugin returned {type(items).__name__}")
        flat.extend(items)
    return flat


def backend_registry(manager: pluggy.PluginManager | None = None) -> dict[str, BackendSpec]:
    """Backend specs by name; later registrations override earlier ones."""
    from crossrank.backends.base import BackendSpec

    manager = manager or get_plugin_manager()
    registry: dict[str, BackendSpec] = {}
    for spec in _collect(manager.hook.crossrank_backends(), "crossrank_backends"):
        if not isinstance(spec, BackendSpec):
            raise PluginError(f"crossrank_backends must return BackendSpec objects; got {type(spec).__name__}")
        registry[spec.name] = spec
    return registry


def model_sources(manager: pluggy.PluginManager | None = None) -> list[ModelSource]:
    from crossrank.models.sources import ModelSource

    manager = manager or get_plugin_manager()
    sources = _collect(manager.hook.crossrank_model_sources(), "crossrank_model_sources")
    for source in sources:
        if not isinstance(source, ModelSource):
            raise PluginError(f"crossrank_model_sources must return ModelSource objects; got {type(source).__name__}")
    return sources  # type: ignore[return-value]


def calibrator_registry(manager: pluggy.PluginManager | None = None) -> dict[str, type[Calibrator]]:
    from crossrank.calibration import Calibrator

    manager = manager or get_plugin_manager()
    registry: dict[str, type[Calibrator]] = {}
    for cls in _collect(manager.hook.crossrank_calibrators(), "crossrank_calibrators"):
        if not (isinstance(cls, type) and issubclass(cls, Calibrator)):
            raise PluginError(f"crossrank_calibrators must return Calibrator subclasses; got {cls!r}")
        registry[cls.kind] = cls
    return registry


def family_registry(manager: pluggy.PluginManager | None = None) -> dict[str, ModelFamily]:
    """Model families by name, in registration order; later registrations override earlier ones."""
    from crossrank.families.base import ModelFamily

    manager = manager or get_plugin_manager()
    registry: dict[str, ModelFamily] = {}
    for family in _collect(manager.hook.crossrank_families(), "crossrank_families"):
        if not isinstance(family, ModelFamily):
            got = f"the class {family.__name__} (return an instance)" if isinstance(family, type) else type(family).__name__
            raise PluginError(f"crossrank_families must return ModelFamily instances; got {got}")
        if not isinstance(family.name, str) or not family.name:
            raise PluginError(f"a model family needs a non-empty name; {type(family).__name__} has {family.name!r}")
        registry.pop(family.name, None)
        registry[family.name] = family
    return registry
