"""An unusable CROSSRANK_HOME gives a CrossRankError that says what is wrong and where."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crossrank import (
    ConfigurationError,
    CrossRankError,
    ModelConfig,
    ModelNotFoundError,
    ModelSource,
    Reranker,
    SourceEntry,
    hookimpl,
    pull_model,
    resolve_model,
)
from crossrank.models.domains import register_domain
from crossrank.models.files import sha256_file
from crossrank.plugins import new_plugin_manager


class _CopySource(ModelSource):
    name = "copy-test"

    def __init__(self, model: str, origin: Path) -> None:
        self.model, self.origin = model, origin

    def entries(self) -> list[SourceEntry]:
        return [SourceEntry(name=self.model, source="test", license=None, description="")]

    @property
    def needs_network(self) -> bool:
        return False

    def fetch(self, model: str, destination: Path) -> ModelConfig:
        for name in ("tokenizer.json", "config.json", "model.onnx"):
            (destination / name).write_bytes((self.origin / name).read_bytes())
        config = ModelConfig(name=model, onnx_file="model.onnx", revision="copy-1",
                             files={"model.onnx": sha256_file(destination / "model.onnx")})
        config.save(destination)
        return config


def _manager(source: ModelSource):  # type: ignore[no-untyped-def]
    class Plugin:
        @hookimpl
        def crossrank_model_sources(self) -> list[ModelSource]:
            return [source]

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(Plugin())
    return manager


@pytest.fixture(params=["home-is-a-file", "home-under-a-file", "models-is-a-file"])
def blocked_home(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A CROSSRANK_HOME that cannot hold the model cache, and the file in the way."""
    blocker = tmp_path / "a-file"
    if request.param == "home-is-a-file":
        blocker.write_text("x")
        home = blocker
    elif request.param == "home-under-a-file":
        blocker.write_text("x")
        home = blocker / "crossrank"
    else:
        home = tmp_path / "home"
        home.mkdir()
        blocker = home / "models"
        blocker.write_text("x")
    monkeypatch.setenv("CROSSRANK_HOME", str(home))
    return home, blocker


def test_pull_into_a_blocked_home_says_which_file_is_in_the_way(blocked_home: tuple[Path, Path], tiny_model_dir: Path) -> None:
    home, blocker = blocked_home
    name = "test/blocked-home"
    with pytest.raises(ConfigurationError) as info:
        pull_model(name, plugin_manager=_manager(_CopySource(name, tiny_model_dir)))
    message = str(info.value)
    assert f"{blocker} is a file, not a folder" in message and "CROSSRANK_HOME" in message, message


def test_reranker_with_a_blocked_home_raises_a_crossrank_error(blocked_home: tuple[Path, Path], tiny_model_dir: Path) -> None:
    _, blocker = blocked_home
    name = "test/blocked-home"
    with pytest.raises(CrossRankError, match="is a file, not a folder") as info:
        Reranker(name, plugin_manager=_manager(_CopySource(name, tiny_model_dir)), cache=None).warm_up()
    assert str(blocker) in str(info.value)


def test_lookups_without_downloads_still_work_with_a_blocked_home(blocked_home: tuple[Path, Path], tiny_model_dir: Path) -> None:
    assert resolve_model(str(tiny_model_dir)).found_in == "local"
    with pytest.raises(ModelNotFoundError, match="cannot find model"):
        resolve_model("test/not-there", allow_fetch=False)


@pytest.mark.parametrize("under", [False, True], ids=["home-is-a-file", "home-under-a-file"])
def test_registering_a_domain_in_a_blocked_home_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, under: bool
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("CROSSRANK_HOME", str(blocker / "crossrank" if under else blocker))
    with pytest.raises(ConfigurationError, match="domain registry") as info:
        register_domain("legal", tiny_model_dir)
    assert f"{blocker} is a file, not a folder" in str(info.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="permissions do not bind the root user")
def test_a_home_without_write_permission_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> None:
    home = tmp_path / "read-only-home"
    home.mkdir()
    home.chmod(0o500)
    monkeypatch.setenv("CROSSRANK_HOME", str(home))
    name = "test/read-only-home"
    try:
        with pytest.raises(ConfigurationError, match="permission denied") as info:
            pull_model(name, plugin_manager=_manager(_CopySource(name, tiny_model_dir)))
        assert str(home) in str(info.value)
    finally:
        home.chmod(0o700)
