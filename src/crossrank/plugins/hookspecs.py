"""Hook specifications: the extension points of crossrank.

Implement any of these in a module or object decorated with :data:`crossrank.hookimpl` and
expose it under the ``crossrank`` entry-point group; crossrank's own backends, model sources,
calibrators and model families are registered through these same hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from crossrank.backends.base import BackendSpec
    from crossrank.calibration import Calibrator
    from crossrank.families.base import ModelFamily
    from crossrank.models.sources import ModelSource

hookspec = pluggy.HookspecMarker("crossrank")


@hookspec
def crossrank_backends() -> list[BackendSpec]:
    """Return backend specifications this plugin provides.

    All results: every plugin's list is collected. A later-registered plugin's backend with
    the same name replaces an earlier one, so a plugin can override a built-in.
    """
    raise NotImplementedError


@hookspec
def crossrank_model_sources() -> list[ModelSource]:
    """Return model sources this plugin provides.

    All results: sources are tried in registration order (offline-capable ones first) when a
    model is neither a local folder nor already cached.
    """
    raise NotImplementedError


@hookspec
def crossrank_calibrators() -> list[type[Calibrator]]:
    """Return calibrator classes this plugin provides, keyed by their ``kind``.

    All results: a calibration file may only name a kind registered here, so loading a
    calibration never executes code chosen by the file.
    """
    raise NotImplementedError


@hookspec
def crossrank_families() -> list[ModelFamily]:
    """Return model families this plugin provides (:class:`crossrank.families.ModelFamily` instances).

    All results: a family says how (query, document) pairs become a model's inputs and how its
    outputs become one raw score per pair. A later-registered family with the same name replaces
    an earlier one; ``Reranker(family=name)`` or a model folder's ``crossrank.json`` chooses one,
    and the ids in a family's ``known_models`` choose it for those models.
    """
    raise NotImplementedError
