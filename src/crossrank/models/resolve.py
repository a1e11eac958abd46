"""Finding a model by name: local folder, crossrank's cache, the Hugging Face cache, then sources."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crossrank.errors import CrossRankError, ModelNotFoundError
from crossrank.models.config import MODEL_CONFIG_FILENAME, ModelConfig
from crossrank.models.files import models_dir
from crossrank.models.sources import hf_cache_snapshot

if TYPE_CHECKING:
    import pluggy

__all__ = ["ResolvedModel", "resolve_model", "pull_model", "cached_models", "cache_folder_for", "remove_cached"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    """A model folder ready to load, its config, and where it was found."""

    path: Path
    config: ModelConfig
    found_in: str


def cache_folder_for(name: str) -> Path:
    """The folder crossrank's cache uses for a model name (``org/name`` -> ``org--name``)."""
    slug = name.strip().replace("/", "--")
    if not slug or slug in (".", "..") or any(sep in slug for sep in ("\\", "\x00")):
        raise ModelNotFoundError(f"{name!r} is not a usable model name")
    return models_dir() / slug


def resolve_model(
    name: str | os.PathLike[str],
    *,
    plugin_manager: pluggy.PluginManager | None = None,
    allow_fetch: bool = True,
) -> ResolvedModel:
    """Locate ``name`` in this order and return the first hit.

    1. an existing local folder;
    2. crossrank's model cache (``$CROSSRANK_HOME/models``);
    3. the Hugging Face cache (``$HF_HUB_CACHE`` or ``$HF_HOME/hub``);
    4. registered offline-capable sources (the embedded default), fetched into the cache;
    5. network sources such as the Hub (skipped in offline mode).

    Raises:
        ModelNotFoundError: listing every place that was tried.
    """
    text = os.fspath(name)
    tried: list[str] = []
    local = Path(text).expanduser()
    if local.is_dir():
        return ResolvedModel(local.resolve(), ModelConfig.load(local, name=local.name), "local")
    tried.append(f"local folder {local} (not found)")
    cached = cache_folder_for(text)
    if (cached / MODEL_CONFIG_FILENAME).is_file():
        return ResolvedModel(cached, ModelConfig.load(cached), "cache")
    tried.append(f"crossrank cache {cached} (not found)")
    snapshot = hf_cache_snapshot(text)
    if snapshot is not None:
        return ResolvedModel(snapshot, ModelConfig.detect(snapshot, name=text), "huggingface-cache")
    tried.append("Hugging Face cache (not found)")
    if allow_fetch:
        try:
            return pull_model(text, plugin_manager=plugin_manager)
        except ModelNotFoundError as exc:
            tried.append(str(exc))
    else:
        tried.append("model sources (fetching disabled)")
    raise ModelNotFoundError(f"cannot find model {text!r}; tried: " + "; ".join(tried))


def pull_model(
    name: str,
    *,
    force: bool = False,
    plugin_manager: pluggy.PluginManager | None = None,
) -> ResolvedModel:
    """Fetch ``name`` from the first registered source that provides it into the cache.

    Files are written into a temporary folder beside the cache entry and moved into place only
    once complete and verified, so an interrupted pull never leaves a half model behind.
    """
    from crossrank.plugins import model_sources

    target = cache_folder_for(name)
    if (target / MODEL_CONFIG_FILENAME).is_file() and not force:
        return ResolvedModel(target, ModelConfig.load(target), "cache")
    sources = [s for s in model_sources(plugin_manager) if s.provides(name)]
    # Offline-capable sources first, so a registered local copy wins over a network download.
    sources.sort(key=lambda s: s.needs_network)
    if not sources:
        raise ModelNotFoundError(f"no registered model source provides {name!r}")
    errors: list[str] = []
    for source in sources:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        try:
            logger.info("fetching model %s from source %s", name, source.name)
            config = source.fetch(name, staging)
            config.verify(staging)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
            return ResolvedModel(target, config, f"source:{source.name}")
        except CrossRankError as exc:
            errors.append(f"{source.name}: {exc}")
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    raise ModelNotFoundError(f"could not fetch {name!r}: " + "; ".join(errors))


def cached_models() -> list[ResolvedModel]:
    """Every complete model in crossrank's cache."""
    root = models_dir()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not (folder / MODEL_CONFIG_FILENAME).is_file():
            continue
        found.append(ResolvedModel(folder, ModelConfig.load(folder), "cache"))
    return found


def remove_cached(name: str) -> bool:
    """Delete a model from crossrank's cache; return whether it was there."""
    target = cache_folder_for(name)
    if not target.exists():
        return False
    shutil.rmtree(target)
    return True
