"""File helpers: hashing (with a cache of verified hashes), atomic writes, locks, cache location."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from crossrank.errors import ConfigurationError, ModelIntegrityError

if TYPE_CHECKING:
    from crossrank.models.config import ModelConfig

__all__ = [
    "sha256_file",
    "cached_sha256",
    "atomic_write_bytes",
    "atomic_write_text",
    "crossrank_home",
    "models_dir",
    "ensure_directory",
    "exclusive_lock",
    "onnx_external_data",
    "model_fingerprint",
]


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 of a file's contents, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# Hashes already computed in this process, keyed by the file's identity: device, inode, size,
# modification and status-change times. Rewriting a file, even to the same size with its old
# modification time restored, moves its status-change time, so a changed file is hashed again.
_HASHES: dict[tuple[int, int, int, int, int], str] = {}
_HASHES_LOCK = threading.Lock()
_HASHES_LIMIT = 4096


def _identity(stat: os.stat_result) -> tuple[int, int, int, int, int]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def cached_sha256(path: str | Path) -> str:
    """:func:`sha256_file`, computed once per version of a file in this process.

    Loading the same model again (another ``Reranker``, a reload after ``close()``) checks its
    files without reading them again while they keep their size, times and inode.
    """
    before = os.stat(path)
    key = _identity(before)
    with _HASHES_LOCK:
        known = _HASHES.get(key)
    if known is not None:
        return known
    digest = sha256_file(path)
    if _identity(os.stat(path)) == key:  # unchanged while it was read: safe to remember
        with _HASHES_LOCK:
            if len(_HASHES) >= _HASHES_LIMIT:
                _HASHES.clear()
            _HASHES[key] = digest
    return digest


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    A process killed mid-write leaves at most a ``.tmp`` file, never a half-written ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def crossrank_home() -> Path:
    """Root of crossrank's own files: ``$CROSSRANK_HOME`` or the user cache dir."""
    env = os.environ.get("CROSSRANK_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("crossrank"))


def models_dir() -> Path:
    return crossrank_home() / "models"


def _home_note() -> str:
    env = os.environ.get("CROSSRANK_HOME")
    if env:
        return f" (CROSSRANK_HOME={env}; point it at a writable folder)"
    return " (the default crossrank home; set CROSSRANK_HOME to a writable folder)"


def ensure_directory(path: str | Path, purpose: str) -> Path:
    """Create ``path`` (and its parents) if needed and check that files can be written in it.

    Args:
        path: The folder.
        purpose: What the folder is for, for the error message (e.g. ``"the model cache"``).

    Raises:
        ConfigurationError: A file is in the way, a permission is missing, or the file system
            refuses; the message names the folder, the path that failed and the cause.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create {purpose} folder {path}: {_explain(path, exc)}{_home_note()}") from None
    if not path.is_dir():
        raise ConfigurationError(f"cannot use {purpose} folder {path}: it is not a folder{_home_note()}")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigurationError(
            f"cannot write in {purpose} folder {path}: permission denied{_home_note()}"
        )
    return path


def _explain(path: Path, exc: OSError) -> str:
    """Why creating ``path`` failed, naming the path component that is in the way."""
    for parent in (path, *path.parents):
        try:
            if parent.exists() and not parent.is_dir():
                return f"{parent} is a file, not a folder"
        except OSError:
            continue
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        blocked = next((p for p in path.parents if p.exists()), None)
        where = f" in {blocked}" if blocked is not None else ""
        return f"permission denied{where}"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or str(exc)


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def exclusive_lock(path: str | Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if missing) across threads and processes.

    The lock is an advisory ``flock`` (``msvcrt.locking`` on Windows) on an open file, so the
    operating system releases it when its holder exits or is killed; the file itself is kept.

    Args:
        path: The lock file.
        blocking: Wait for the lock; when False, yield False at once if another holder has it.

    Yields:
        True while the lock is held (False only when ``blocking`` is False and it is taken).
    """
    path = Path(path)
    key = os.path.abspath(path)
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(key, threading.Lock())
    if not thread_lock.acquire(blocking=blocking):
        yield False
        return
    try:
        ensure_directory(path.parent, "the lock-file")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ConfigurationError(f"cannot open lock file {path}: {_explain(path, exc)}{_home_note()}") from None
        try:
            if not _lock_fd(fd, blocking):
                yield False
                return
            try:
                yield True
            finally:
                _unlock_fd(fd)
        finally:
            os.close(fd)
    finally:
        thread_lock.release()


def _lock_fd(fd: int, blocking: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        while True:
            try:
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
                return True
            except OSError:
                if not blocking:
                    return False
                time.sleep(0.05)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _unlock_fd(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


_EXTERNAL: dict[tuple[int, int, int, int, int], tuple[str, ...]] = {}


def onnx_external_data(onnx_path: str | Path, folder: str | Path) -> tuple[str, ...]:
    """The external data files an ONNX graph reads, relative to ``folder``; checked, not loaded.

    ONNX Runtime reads a graph's external tensors from files named inside the graph, relative
    to the graph's own folder. Each must be a regular file inside the model folder.

    Raises:
        ModelIntegrityError: The graph cannot be parsed, or names an external data file that
            is missing or lies outside the model folder; the message names both files.
    """
    onnx_path, folder = Path(onnx_path), Path(folder)
    key = _identity(os.stat(onnx_path))
    with _HASHES_LOCK:
        known = _EXTERNAL.get(key)
    if known is None:
        known = _read_external_locations(onnx_path) if _mentions_external_data(onnx_path) else ()
        with _HASHES_LOCK:
            if len(_EXTERNAL) >= _HASHES_LIMIT:
                _EXTERNAL.clear()
            _EXTERNAL[key] = known
    graph_dir = os.path.relpath(onnx_path.parent, folder)
    names: list[str] = []
    for location in known:
        # Checked by name, not by following links: a Hugging Face cache snapshot links its files to blobs.
        relative = os.path.normpath(os.path.join(graph_dir, location))
        if os.path.isabs(location) or relative == ".." or relative.startswith(".." + os.sep) or "\x00" in location:
            raise ModelIntegrityError(
                f"ONNX model {onnx_path} reads external data from {location!r}, outside the model folder {folder}; "
                "external data files must lie inside the model folder"
            )
        if not (folder / relative).is_file():
            raise ModelIntegrityError(
                f"ONNX model {onnx_path} keeps tensors in external data file {folder / relative}, which is missing"
            )
        names.append(Path(relative).as_posix())
    return tuple(sorted(set(names)))


# How an ONNX file spells the ``location`` key of a tensor's external data entry (field 1 of a
# StringStringEntryProto: tag 0x0a, length 8). A graph without it has no external data; one with
# it (or a weight that happens to hold these bytes) is parsed to be sure.
_EXTERNAL_MARKER = b"\x0a\x08location"


def _mentions_external_data(onnx_path: Path) -> bool:
    """A cheap scan that rules out external data without importing onnx or parsing the graph."""
    import mmap

    with open(onnx_path, "rb") as handle:
        try:
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
                return view.find(_EXTERNAL_MARKER) != -1
        except ValueError:  # an empty file cannot be mapped
            return False


def _read_external_locations(onnx_path: Path) -> tuple[str, ...]:
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # protobuf decode errors are untyped
        raise ModelIntegrityError(f"cannot parse ONNX model {onnx_path}: {exc}") from None
    locations = {
        ExternalDataInfo(tensor).location
        for tensor in _get_all_tensors(model)
        if tensor.HasField("data_location") and tensor.data_location == onnx.TensorProto.EXTERNAL
    }
    return tuple(sorted(locations))


def model_fingerprint(folder: str | Path, config: ModelConfig) -> str:
    """A digest of everything in a model folder that changes a score.

    Covers the contents of the weights (safetensors), the ONNX graph and its external data
    files, the hash-pinned original graph, the tokenizer, ``config.json`` and every other file
    recorded in ``crossrank.json``, plus the configuration fields that change how the model
    runs (file names, ``max_length``, ``quantization``, ``extra.original_graph``). Labels that do
    not change a score (name, revision, license, origin) are left out: add them yourself where
    they matter. Contents are hashed once per file version per process (:func:`cached_sha256`).

    Args:
        folder: The model folder.
        config: Its configuration (``ModelConfig.load(folder)``).

    Returns:
        A SHA-256 hex digest.

    Raises:
        ModelIntegrityError: A file recorded in ``files`` is missing, or the graph's external
            data is missing or outside the folder.
    """
    folder = Path(folder)
    settings = {
        "tokenizer_file": config.tokenizer_file,
        "onnx_file": config.onnx_file,
        "torch_weights": config.torch_weights,
        "max_length": config.max_length,
        "quantization": config.quantization,
        "original_graph": config.extra.get("original_graph"),
    }
    names = {config.tokenizer_file, config.onnx_file, config.torch_weights, *config.files}
    original = config.extra.get("original_graph")
    if isinstance(original, str):
        names.add(original)
    if (folder / "config.json").is_file():
        names.add("config.json")
    for graph in [n for n in names if n and n.endswith(".onnx") and (folder / n).is_file()]:
        names.update(onnx_external_data(folder / graph, folder))
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8"))
    for name in sorted(n for n in names if n):
        path = folder / name
        if path.is_file():
            digest.update(f"\x00{name}\x00{cached_sha256(path)}".encode())
        elif name in config.files:
            raise ModelIntegrityError(f"model file {path} is missing")
        else:  # named but absent (weights for a backend that is not used): absence is part of the identity
            digest.update(f"\x00{name}\x00absent".encode())
    return digest.hexdigest()
