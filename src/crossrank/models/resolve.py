"""Finding a model by name: local folder, crossrank's cache, the Hugging Face cache, then sources.

Pulling into the cache is safe under any number of concurrent threads and processes sharing
one ``CROSSRANK_HOME``: a per-model lock file (``$CROSSRANK_HOME/locks``) lets exactly one of
them fetch while the others wait and then use its result; the fetch is written into a private
staging folder (``models/.<name>.<random>.partial``), verified, and renamed into place in one
step, so a model folder in the cache is always complete. A pull killed part-way leaves only
its staging folder, which nothing loads and the next pull removes.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crossrank.errors import ConfigurationError, CrossRankError, ModelIntegrityError, ModelNotFoundError, describe
from crossrank.models.config import MODEL_CONFIG_FILENAME, ModelConfig
from crossrank.models.files import crossrank_home, ensure_directory, exclusive_lock, models_dir, onnx_external_data
from crossrank.models.sources import hf_cache_roots, hf_cache_snapshot

if TYPE_CHECKING:
    import pluggy

    from crossrank.models.sources import ModelSource

__all__ = [
    "ResolvedModel",
    "resolve_model",
    "pull_model",
    "cached_models",
    "cache_folder_for",
    "remove_cached",
    "is_folder_name",
    "check_model_files",
    "clean_stale_staging",
]

logger = logging.getLogger(__name__)

_FOLDER_PREFIXES = ("./", "../", "/", "~", ".\\", "..\\")
# Staging (``.partial``) and replaced (``.old``) folders: ``.<slug>.<random>.<kind>``. The random
# part never holds a dot, so the slug is everything between the leading dot and the last two parts.
_LEFTOVER = re.compile(r"\.(?P<slug>.+)\.(?P<token>[^.]+)\.(?P<kind>partial|old)")


@dataclass(frozen=True)
class ResolvedModel:
    """A model folder ready to load, its config, and where it was found."""

    path: Path
    config: ModelConfig
    found_in: str


def is_folder_name(name: str) -> bool:
    """True when ``name`` means a folder on disk rather than a model id.

    A name starting with ``./``, ``../``, ``/`` or ``~``, an absolute path, ``.``/``..``, or a
    name that exists on disk is a folder; it is never looked up in caches or on the Hub.
    """
    if name in (".", "..", "~") or name.startswith(_FOLDER_PREFIXES) or os.path.isabs(name):
        return True
    try:
        return Path(name).expanduser().exists()
    except (OSError, ValueError):  # a name too long for the file system, or with a NUL
        return False


def cache_folder_for(name: str) -> Path:
    """The folder crossrank's cache uses for a model name (``org/name`` -> ``org--name``)."""
    slug = name.strip().replace("/", "--")
    if not slug or slug in (".", "..") or slug.startswith(".") or any(sep in slug for sep in ("\\", "\x00")):
        raise ModelNotFoundError(f"{name!r} is not a usable model name")
    return models_dir() / slug


def _lock_path(slug: str) -> Path:
    return crossrank_home() / "locks" / f"model-{slug}.lock"


def _is_complete(folder: Path) -> bool:
    """Whether a cache entry is there; a folder is only ever renamed into place complete."""
    try:
        return (folder / MODEL_CONFIG_FILENAME).is_file()
    except OSError as exc:  # e.g. no permission to look inside CROSSRANK_HOME
        raise ConfigurationError(f"cannot read the model cache entry {folder}: {exc.strerror or exc}") from None


def check_model_files(folder: Path, config: ModelConfig) -> None:
    """Verify every file ``crossrank.json`` records and the ONNX graph's external data.

    Raises:
        ModelIntegrityError: A recorded file is missing or changed, or the graph reads external
            data that is missing or outside the folder; the message names the file.
    """
    config.verify(folder)
    if config.onnx_file and (folder / config.onnx_file).is_file():
        external = onnx_external_data(folder / config.onnx_file, folder)
        if external and config.quantization in ("none", "dynamic-int8"):
            _refuse_rewritten_external_graph(folder / config.onnx_file, external, config)


def _refuse_rewritten_external_graph(graph: Path, external: tuple[str, ...], config: ModelConfig) -> None:
    """A dynamically quantized graph is rewritten in memory before loading; its external tensors would be lost."""
    import onnx

    from crossrank.quantization import has_dynamic_quantization

    if config.torch_weights is not None:
        return  # the torch backend can still run this folder
    if has_dynamic_quantization(onnx.load(str(graph), load_external_data=False)):
        raise ModelIntegrityError(
            f"ONNX model {graph} keeps its tensors in external data file(s) {list(external)} and uses dynamic int8 "
            "quantization, which crossrank rewrites in memory before loading; such a graph cannot be loaded. "
            "Save it with its tensors inside the .onnx file (onnx.save_model(model, path, save_as_external_data=False)), "
            "or quantize it per token (crossrank.quantization.rewrite_per_token) before saving"
        )


def _load_checked(folder: Path, found_in: str, name: str | None = None) -> ResolvedModel:
    config = ModelConfig.load(folder, name=name)
    check_model_files(folder, config)
    return ResolvedModel(folder, config, found_in)


def resolve_model(
    name: str | os.PathLike[str],
    *,
    plugin_manager: pluggy.PluginManager | None = None,
    allow_fetch: bool = True,
) -> ResolvedModel:
    """Locate ``name`` in this order and return the first hit, with its files verified.

    1. an existing local folder (a ``Path``, or a name starting with ``./``, ``../``, ``/`` or
       ``~`` or that exists on disk, is a folder and is looked for nowhere else);
    2. crossrank's model cache (``$CROSSRANK_HOME/models``);
    3. the Hugging Face cache (``$HF_HUB_CACHE`` or ``$HF_HOME/hub``);
    4. registered offline-capable sources (the embedded default), fetched into the cache;
    5. network sources such as the Hub (skipped in offline mode).

    Raises:
        ModelNotFoundError: listing every place that was tried, and why each failed.
        ModelIntegrityError: the model was found but a recorded file is missing or changed.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise ConfigurationError(f"model must be a name or a folder path; received {describe(name)}")
    text = os.fspath(name)
    if not isinstance(text, str) or not text.strip():
        raise ModelNotFoundError(f"model name must be a non-empty string; received {describe(text)}")
    if isinstance(name, os.PathLike) or is_folder_name(text):
        return _resolve_folder(text)
    tried = [f"local folder {Path(text).absolute()} (not found)"]
    cached = cache_folder_for(text)
    if _is_complete(cached):
        return _load_checked(cached, "cache")
    tried.append(f"crossrank cache {cached} (not found)")
    snapshot = hf_cache_snapshot(text)
    if snapshot is not None:
        config = ModelConfig.detect(snapshot, name=text)
        check_model_files(snapshot, config)
        return ResolvedModel(snapshot, config, "huggingface-cache")
    tried.append("Hugging Face cache " + ", ".join(str(root) for root in hf_cache_roots()) + " (not found)")
    if not allow_fetch:
        tried.append("registered model sources (not asked: downloads are disabled)")
    else:
        try:
            resolved = _pull(text, force=False, plugin_manager=plugin_manager)
        except _SourcesFailed as exc:
            tried.extend(exc.reasons)
        else:
            check_model_files(resolved.path, resolved.config)
            return resolved
    raise ModelNotFoundError(f"cannot find model {text!r}; tried: " + "; ".join(tried))


def _resolve_folder(text: str) -> ResolvedModel:
    folder = Path(text).expanduser()
    where = folder.absolute()
    try:
        is_dir, exists = folder.is_dir(), folder.exists()
    except OSError as exc:
        raise ModelNotFoundError(f"cannot read model folder {text!r} ({where}): {exc.strerror or exc}") from None
    if is_dir:
        return _load_checked(folder.resolve(), "local", name=folder.resolve().name or str(where))
    if exists:
        raise ModelNotFoundError(
            f"model folder {text!r} ({where}) is a file, not a folder; a model folder holds tokenizer.json and "
            "model.onnx or model.safetensors"
        )
    raise ModelNotFoundError(
        f"cannot find model folder {text!r}; tried: local folder {where} (does not exist). A name starting with "
        "./, ../, / or ~ is a folder on disk, never a model id looked up in caches or on the Hugging Face Hub"
    )


class _SourcesFailed(Exception):
    """No registered source could provide a model; ``reasons`` says why, per source."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def pull_model(
    name: str,
    *,
    force: bool = False,
    plugin_manager: pluggy.PluginManager | None = None,
) -> ResolvedModel:
    """Fetch ``name`` from the first registered source that provides it into the cache.

    Safe to call from any number of threads and processes at once: exactly one of them
    fetches, the others wait for it and return the cached result. Files are written into a
    private staging folder beside the cache entry and renamed into place only once complete and
    verified, so an interrupted or killed pull never leaves a half model where it can be loaded;
    its staging folder is removed by a later pull. A complete folder is never deleted while it
    is in place: ``force=True`` renames the old one aside before moving the new one in.

    Raises:
        ModelNotFoundError: No source provides the model, or every one that does failed.
        ConfigurationError: ``CROSSRANK_HOME`` cannot hold the cache (a file in the way, no
            permission); the message names the folder.
    """
    try:
        resolved = _pull(name, force=force, plugin_manager=plugin_manager)
    except _SourcesFailed as exc:
        raise ModelNotFoundError(f"could not fetch {name!r}: " + "; ".join(exc.reasons)) from None
    check_model_files(resolved.path, resolved.config)
    return resolved


def _pull(name: str, *, force: bool, plugin_manager: pluggy.PluginManager | None) -> ResolvedModel:
    from crossrank.plugins import model_sources

    target = cache_folder_for(name)
    if not force and _is_complete(target):
        return ResolvedModel(target, ModelConfig.load(target), "cache")
    registered = model_sources(plugin_manager)
    sources = [s for s in registered if s.provides(name)]
    # Offline-capable sources first, so a registered local copy wins over a network download.
    sources.sort(key=lambda s: s.needs_network)
    if not sources:
        names = ", ".join(s.name for s in registered) or "none are registered"
        raise _SourcesFailed([f"model sources ({names}): no registered model source provides {name!r}"])
    ensure_directory(target.parent, "the model cache")
    lock = _lock_path(target.name)
    with exclusive_lock(lock, blocking=False) as free:
        if not free:
            logger.info("waiting for another process or thread pulling %s (lock %s)", name, lock)
    with exclusive_lock(lock):
        if not force and _is_complete(target):
            return ResolvedModel(target, ModelConfig.load(target), "cache")
        _remove_leftovers(target)
        others = [s.name for s in registered if s not in sources]
        resolved = _fetch_into_place(name, target, sources, others)
    clean_stale_staging()
    return resolved


def _fetch_into_place(name: str, target: Path, sources: list[ModelSource], others: list[str]) -> ResolvedModel:
    """Try each source in turn; the caller holds the model's lock."""
    reasons = [f"model source {other}: does not provide {name!r}" for other in others]
    for source in sources:
        staging = _new_leftover(target, "partial")
        try:
            logger.info("fetching model %s from source %s", name, source.name)
            config = source.fetch(name, staging)
            if not isinstance(config, ModelConfig):
                raise ModelIntegrityError(
                    f"model source {source.name} returned {describe(config)} from fetch; expected a ModelConfig"
                )
            config.verify(staging)
            if not (staging / MODEL_CONFIG_FILENAME).is_file():
                config.save(staging)
            _sync_tree(staging)
            _move_into_place(staging, target)
            return ResolvedModel(target, config, f"source:{source.name}")
        except CrossRankError as exc:
            reasons.append(f"model source {source.name}: {exc}")
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    raise _SourcesFailed(reasons)


def _new_leftover(target: Path, kind: str) -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=f".{kind}", dir=target.parent))
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create a staging folder in the model cache {target.parent}: {exc.strerror or exc}"
        ) from None


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename the complete ``staging`` folder to ``target``; an old ``target`` is renamed aside first."""
    if target.exists() or target.is_symlink():
        aside = _new_leftover(target, "old")
        os.replace(target, aside / "entry")  # loaders holding open files keep reading the old copy
        os.replace(staging, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staging, target)
    _sync_dir(target.parent)


def _sync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk before it is renamed into place."""
    for root, _dirs, files in os.walk(folder):
        for file in files:
            fd = os.open(os.path.join(root, file), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _sync_dir(Path(root))


def _sync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform (Windows); renames are still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory
    finally:
        os.close(fd)


def _leftovers(root: Path) -> list[tuple[str, Path]]:
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        match = _LEFTOVER.fullmatch(entry.name)
        if match and entry.is_dir():
            found.append((match["slug"], entry))
    return found


def _remove_leftovers(target: Path) -> None:
    """Delete staging and replaced folders of ``target``'s model; the caller holds its lock."""
    for slug, path in _leftovers(target.parent):
        if slug == target.name:
            logger.info("removing %s, left by an interrupted pull", path)
            shutil.rmtree(path, ignore_errors=True)


def clean_stale_staging() -> int:
    """Remove staging folders left by killed pulls of any model nobody is pulling now.

    Returns:
        How many folders were removed.
    """
    root = models_dir()
    removed = 0
    for slug in sorted({slug for slug, _ in _leftovers(root)}):
        with exclusive_lock(_lock_path(slug), blocking=False) as held:
            if not held:
                continue  # a pull of that model is running: its staging folder is live
            for other, path in _leftovers(root):
                if other == slug:
                    shutil.rmtree(path, ignore_errors=True)
                    removed += not path.exists()
    return removed


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
    """Delete a model from crossrank's cache; return whether it was there.

    The folder is renamed aside under the model's lock before it is deleted, so a concurrent
    pull never sees half of it.
    """
    target = cache_folder_for(name)
    if not (target.exists() or target.is_symlink()):
        return False
    with exclusive_lock(_lock_path(target.name)):
        if not (target.exists() or target.is_symlink()):
            return False
        aside = _new_leftover(target, "old")
        os.replace(target, aside / "entry")
        shutil.rmtree(aside)
    return True
