"""Safe loading: tampered or corrupt files fail with a clear error naming the file, and never run code."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crossrank import (
    ConfigurationError,
    CrossRankError,
    ModelConfig,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelSource,
    Reranker,
    SourceEntry,
    hookimpl,
    load_calibration,
    pull_model,
    resolve_model,
)
from crossrank.models.files import models_dir, sha256_file
from crossrank.models.resolve import cache_folder_for, cached_models
from crossrank.plugins import new_plugin_manager

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "the cat and the dog"]


class _TouchOnUnpickle:
    """Unpickling this creates a file: proof that a pickle was (or was not) loaded."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.sentinel,))


def _truncate(path: Path, keep: float = 0.4) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ----------------------------------------------------------------------------- calibration files
def _valid_calibration() -> dict:
    return {
        "format": "crossrank-calibration",
        "version": 1,
        "calibrator": {"kind": "platt", "a": 1.0, "b": -0.5},
        "threshold": 0.4,
        "abstention": None,
        "provenance": {},
    }


@pytest.mark.parametrize(
    ("tamper", "error", "expected"),
    [
        (lambda d: d["calibrator"].update(kind="os.system"), ConfigurationError, "unknown calibrator kind 'os.system'"),
        (lambda d: d["calibrator"].update(kind="builtins.eval"), ConfigurationError, "unknown calibrator kind"),
        (lambda d: d["calibrator"].update(__reduce__="os.system"), ConfigurationError, "unknown parameters for calibrator kind 'platt'"),
        (lambda d: d.update(code="import os"), ConfigurationError, "unknown keys in calibration: \\['code'\\]"),
        (lambda d: d["calibrator"].update(a=float("nan")), ConfigurationError, "'a' must be a finite number"),
        (lambda d: d["calibrator"].update(b="0.5"), ConfigurationError, "'b' must be a finite number"),
        (lambda d: d.update(threshold=7), ConfigurationError, "threshold must be in \\[0, 1\\]"),
        (lambda d: d.update(version=99), ConfigurationError, "unsupported calibration format version"),
        (lambda d: d.update(format="pickle"), ConfigurationError, "not a crossrank calibration"),
        (lambda d: d.update(abstention=[1, 2]), ConfigurationError, "'abstention' must be an object"),
    ],
)
def test_tampered_calibration_json_is_refused_naming_the_file(
    tiny_model_copy: Path, tamper, error: type, expected: str
) -> None:
    data = _valid_calibration()
    tamper(data)
    path = tiny_model_copy / "calibration.json"
    path.write_text(json.dumps(data))  # json writes NaN as a bare literal, as a hostile file could
    with pytest.raises(error, match=expected) as info:
        load_calibration(path)
    assert str(path) in str(info.value)
    with pytest.raises(error, match=expected):
        Reranker(str(tiny_model_copy)).warm_up()


def test_valid_calibration_json_is_used(tiny_model_copy: Path) -> None:
    (tiny_model_copy / "calibration.json").write_text(json.dumps(_valid_calibration()))
    reranker = Reranker(str(tiny_model_copy)).warm_up()
    assert reranker.calibration.calibrator.to_dict() == {"kind": "platt", "a": 1.0, "b": -0.5}
    assert reranker.calibration.threshold == 0.4


@pytest.mark.parametrize("content", [b'{"format": "crossrank-calibration", "vers', b"\xff\xfe\x00binary", b""])
def test_corrupt_calibration_file_names_the_file(tiny_model_copy: Path, content: bytes) -> None:
    path = tiny_model_copy / "calibration.json"
    path.write_bytes(content)
    with pytest.raises(ModelIntegrityError, match=f"cannot read calibration file {path}"):
        Reranker(str(tiny_model_copy)).warm_up()


def test_pickled_calibration_is_never_unpickled(tiny_model_copy: Path, tmp_path: Path) -> None:
    sentinel = tmp_path / "code-ran"
    (tiny_model_copy / "calibration.json").write_bytes(pickle.dumps(_TouchOnUnpickle(sentinel)))
    with pytest.raises(ModelIntegrityError, match="calibration.json"):
        Reranker(str(tiny_model_copy)).warm_up()
    assert not sentinel.exists()


# ----------------------------------------------------------------------------- crossrank.json
def _write_model_config(folder: Path, **changes: object) -> Path:
    data = ModelConfig(name="tiny", onnx_file="model.onnx", torch_weights="model.safetensors").to_dict()
    data.update(changes)
    path = folder / "crossrank.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"loader": "evil.module:run"}, "unknown keys in model config: \\['loader'\\]"),
        ({"onnx_file": "../outside/model.onnx"}, "must stay inside the model folder; received '../outside/model.onnx'"),
        ({"onnx_file": "/etc/passwd"}, "must stay inside the model folder; received '/etc/passwd'"),
        ({"tokenizer_file": "sub/../../tokenizer.json"}, "must stay inside the model folder"),
        ({"torch_weights": "../../weights.safetensors"}, "must stay inside the model folder"),
        ({"files": {"../../etc/shadow": "0" * 64}}, "must stay inside the model folder"),
        ({"max_length": "512"}, "max_length must be an int >= 8; received '512'"),
        ({"quantization": "pickle"}, "quantization must be one of"),
        ({"version": 2}, "unsupported model config version"),
        ({"format": "something-else"}, "not a crossrank model config"),
    ],
)
def test_tampered_model_config_is_refused_naming_the_file(tiny_model_copy: Path, changes: dict, expected: str) -> None:
    path = _write_model_config(tiny_model_copy, **changes)
    with pytest.raises(ConfigurationError, match=expected) as info:
        Reranker(str(tiny_model_copy)).warm_up()
    assert str(path) in str(info.value)


def test_unreadable_model_config_names_the_file(tiny_model_copy: Path) -> None:
    path = tiny_model_copy / "crossrank.json"
    path.write_text('{"format": "crossrank-model", "version": 1, "name": "tin')
    with pytest.raises(ModelIntegrityError, match=f"cannot read model config {path}"):
        Reranker(str(tiny_model_copy)).warm_up()


# ----------------------------------------------------------------------------- corrupt model files
def test_truncated_onnx_graph_names_the_file(tiny_model_copy: Path) -> None:
    onnx_path = tiny_model_copy / "model.onnx"
    _truncate(onnx_path)
    with pytest.raises(ModelIntegrityError) as info:
        Reranker(str(tiny_model_copy), backend="onnx").warm_up()
    assert str(onnx_path) in str(info.value)


def test_truncated_safetensors_names_the_file(tiny_model_copy: Path) -> None:
    weights = tiny_model_copy / "model.safetensors"
    _truncate(weights, keep=0.5)
    with pytest.raises(ModelIntegrityError, match="corrupt or truncated") as info:
        Reranker(str(tiny_model_copy), backend="torch").warm_up()
    assert str(weights) in str(info.value)


def test_truncated_tokenizer_names_the_file(tiny_model_copy: Path) -> None:
    tokenizer = tiny_model_copy / "tokenizer.json"
    _truncate(tokenizer)
    with pytest.raises(ModelIntegrityError, match=f"cannot load tokenizer {tokenizer}"):
        Reranker(str(tiny_model_copy)).warm_up()


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_sha256_mismatch_is_refused_naming_the_file(tiny_model_copy: Path, backend: str) -> None:
    files = {rel: sha256_file(tiny_model_copy / rel) for rel in ("model.onnx", "model.safetensors")}
    _write_model_config(tiny_model_copy, files=files)
    assert len(Reranker(str(tiny_model_copy), backend=backend).rerank(QUERY, DOCS)) == 2, "intact files load"
    target = tiny_model_copy / ("model.onnx" if backend == "onnx" else "model.safetensors")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, still parses, different weights
    target.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="is corrupt or was modified: sha256") as info:
        Reranker(str(tiny_model_copy), backend=backend).warm_up()
    assert str(target) in str(info.value) and files[target.name] in str(info.value)


# ----------------------------------------------------------------------------- no code execution
def test_auto_map_is_refused_without_trust_remote_code(tiny_model_copy: Path, tmp_path: Path) -> None:
    sentinel = tmp_path / "remote-code-ran"
    (tiny_model_copy / "evil_modeling.py").write_text(f"open({str(sentinel)!r}, 'w').close()\n")
    config_path = tiny_model_copy / "config.json"
    config = json.loads(config_path.read_text())
    config["auto_map"] = {
        "AutoConfig": "evil_modeling.EvilConfig",
        "AutoModelForSequenceClassification": "evil_modeling.EvilModel",
    }
    config_path.write_text(json.dumps(config))
    with pytest.raises(ConfigurationError, match="asks to run custom code \\(auto_map\\); refused") as info:
        Reranker(str(tiny_model_copy), backend="torch").warm_up()
    assert str(config_path) in str(info.value) and "trust_remote_code" in str(info.value)
    with pytest.raises(ConfigurationError, match="trust_remote_code must be True or False; received 'false'"):
        Reranker(str(tiny_model_copy), backend="torch", backend_options={"trust_remote_code": "false"}).warm_up()
    # The ONNX path never imports Python from the model folder.
    assert len(Reranker(str(tiny_model_copy), backend="onnx").rerank(QUERY, DOCS)) == 2
    assert not sentinel.exists()


def test_pickled_weights_are_never_loaded(tiny_model_copy: Path, tmp_path: Path) -> None:
    sentinel = tmp_path / "pickle-ran"
    (tiny_model_copy / "pytorch_model.bin").write_bytes(pickle.dumps(_TouchOnUnpickle(sentinel)))
    # Beside safetensors, the pickle is ignored.
    assert len(Reranker(str(tiny_model_copy), backend="torch").rerank(QUERY, DOCS)) == 2
    assert not sentinel.exists()
    # On its own, a pickle is not a model crossrank will load.
    (tiny_model_copy / "model.safetensors").unlink()
    (tiny_model_copy / "model.onnx").unlink()
    with pytest.raises(ModelNotFoundError, match="has no model weights"):
        Reranker(str(tiny_model_copy), backend="torch").warm_up()
    assert not sentinel.exists()


# ----------------------------------------------------------------------------- downloads into the cache
class _FileSource(ModelSource):
    """A model source copying the tiny model, optionally failing part-way like a dropped download."""

    name = "test-files"

    def __init__(self, model: str, origin: Path, failure: BaseException | None = None, lie_about: str | None = None):
        self.model = model
        self.origin = origin
        self.failure = failure
        self.lie_about = lie_about
        self.fetches = 0

    def entries(self) -> list[SourceEntry]:
        return [SourceEntry(name=self.model, source="test", license=None, description="tiny test model")]

    @property
    def needs_network(self) -> bool:
        return False

    def fetch(self, model: str, destination: Path) -> ModelConfig:
        self.fetches += 1
        for name in ("tokenizer.json", "config.json"):
            (destination / name).write_bytes((self.origin / name).read_bytes())
        graph = (self.origin / "model.onnx").read_bytes()
        if self.failure is not None:
            (destination / "model.onnx").write_bytes(graph[: len(graph) // 3])
            raise self.failure
        (destination / "model.onnx").write_bytes(graph)
        files = {"model.onnx": sha256_file(self.origin / "model.onnx")}
        if self.lie_about:
            files[self.lie_about] = "0" * 64  # what a tampered mirror would serve
        config = ModelConfig(name=model, onnx_file="model.onnx", revision="test-1", files=files)
        config.save(destination)
        return config


def _manager_with(source: ModelSource):  # type: ignore[no-untyped-def]
    class Plugin:
        @hookimpl
        def crossrank_model_sources(self) -> list[ModelSource]:
            return [source]

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(Plugin(), name=f"source-{id(source)}")
    return manager


def _assert_not_cached(name: str) -> None:
    assert not cache_folder_for(name).exists()
    assert name not in [m.config.name for m in cached_models()]
    with pytest.raises(ModelNotFoundError, match="cannot find model"):
        resolve_model(name, allow_fetch=False)


@pytest.mark.parametrize(
    ("failure", "raised"),
    [
        (ConnectionResetError("connection reset by peer"), ConnectionResetError),
        (ModelNotFoundError("mirror went away mid-transfer"), ModelNotFoundError),
    ],
)
def test_interrupted_fetch_leaves_nothing_in_the_cache(
    isolated_home: Path, tiny_model_dir: Path, failure: BaseException, raised: type
) -> None:
    name = "test/interrupted-model"
    broken = _FileSource(name, tiny_model_dir, failure=failure)
    with pytest.raises(raised):
        pull_model(name, plugin_manager=_manager_with(broken))
    assert broken.fetches == 1
    _assert_not_cached(name)
    assert list(models_dir().iterdir()) == [], "the partial download folder was removed"
    # A later, complete fetch works and loads.
    good = _FileSource(name, tiny_model_dir)
    reranker = Reranker(name, plugin_manager=_manager_with(good))
    assert len(reranker.rerank(QUERY, DOCS)) == 2
    assert reranker.model_path == cache_folder_for(name) and good.fetches == 1


def test_hash_mismatch_in_fetched_files_keeps_them_out_of_the_cache(isolated_home: Path, tiny_model_dir: Path) -> None:
    name = "test/tampered-mirror"
    source = _FileSource(name, tiny_model_dir, lie_about="tokenizer.json")
    with pytest.raises(ModelNotFoundError, match="is corrupt or was modified: sha256"):
        pull_model(name, plugin_manager=_manager_with(source))
    _assert_not_cached(name)


_KILLED_FETCH = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from crossrank import ModelSource, SourceEntry, hookimpl, pull_model
    from crossrank.plugins import new_plugin_manager

    origin, name = Path(sys.argv[1]), sys.argv[2]

    class DyingSource(ModelSource):
        name = "dying"
        def entries(self):
            return [SourceEntry(name=name, source="test", license=None, description="")]
        @property
        def needs_network(self):
            return False
        def fetch(self, model, destination):
            for file in ("tokenizer.json", "config.json"):
                (destination / file).write_bytes((origin / file).read_bytes())
            graph = (origin / "model.onnx").read_bytes()
            with open(destination / "model.onnx", "wb") as handle:
                handle.write(graph[: len(graph) // 3])
                handle.flush()
                os.fsync(handle.fileno())
            os.kill(os.getpid(), signal.SIGKILL)  # the process dies mid-download, no cleanup runs

    class Plugin:
        @hookimpl
        def crossrank_model_sources(self):
            return [DyingSource()]

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(Plugin())
    pull_model(name, plugin_manager=manager)
    """
)


def test_download_killed_by_sigkill_leaves_no_loadable_half_model(isolated_home: Path, tiny_model_dir: Path) -> None:
    name = "test/killed-model"
    env = {**os.environ, "CROSSRANK_HOME": str(isolated_home), "CROSSRANK_DISABLE_PLUGIN_AUTOLOAD": "1"}
    completed = subprocess.run(
        [sys.executable, "-c", _KILLED_FETCH, str(tiny_model_dir), name], env=env, capture_output=True, text=True
    )
    assert completed.returncode == -signal.SIGKILL, completed.stderr
    leftovers = list(models_dir().iterdir())
    assert leftovers, "the killed process left its staging folder behind"
    assert all(p.name.startswith(".") and p.name.endswith(".partial") for p in leftovers), leftovers
    assert any((p / "model.onnx").is_file() for p in leftovers), "the half file exists, but only in staging"
    _assert_not_cached(name)
    with pytest.raises(ModelNotFoundError):
        Reranker(name, allow_download=False).warm_up()
    # A fetch after the crash completes normally beside the stale staging folder.
    reranker = Reranker(name, plugin_manager=_manager_with(_FileSource(name, tiny_model_dir)))
    assert len(reranker.rerank(QUERY, DOCS)) == 2


def test_corrupted_cache_entry_names_the_file(isolated_home: Path, tiny_model_dir: Path) -> None:
    name = "test/cached-then-corrupted"
    pull_model(name, plugin_manager=_manager_with(_FileSource(name, tiny_model_dir)))
    graph = cache_folder_for(name) / "model.onnx"
    _truncate(graph, keep=0.9)
    with pytest.raises(ModelIntegrityError, match="sha256") as info:
        Reranker(name, allow_download=False).warm_up()
    assert str(graph) in str(info.value)
    assert isinstance(info.value, CrossRankError)
