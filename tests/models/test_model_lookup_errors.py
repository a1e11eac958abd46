"""Every failed model lookup is a ModelNotFoundError that lists where it looked, online or offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crossrank import CrossRankError, ModelNotFoundError, Reranker, resolve_model


@pytest.fixture()
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, so relative names resolve against a known place."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.mark.parametrize("name", ["./my_model", "../my_model", "~/crossrank-no-such-model-folder", "/nonexistent/crossrank/model"])
def test_a_path_like_name_is_a_folder_never_a_hub_id(isolated_home: Path, elsewhere: Path, name: str) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(name)
    message = str(info.value)
    folder = Path(name).expanduser().absolute()
    assert str(folder) in message and "local folder" in message
    # Not looked up as a model id: no cache entry, no Hub.
    assert "Hugging Face cache" not in message and "huggingface-hub" not in message and "crossrank cache" not in message


def test_reranker_with_a_missing_folder_raises_model_not_found(isolated_home: Path, elsewhere: Path) -> None:
    reranker = Reranker("./my_model")
    with pytest.raises(ModelNotFoundError, match="my_model"):
        reranker.warm_up()


def test_a_name_that_is_a_file_on_disk_is_not_a_model_folder(isolated_home: Path, elsewhere: Path) -> None:
    (elsewhere / "acme").mkdir()
    (elsewhere / "acme" / "model").write_text("not a folder")
    with pytest.raises(ModelNotFoundError, match="is a file, not a folder") as info:
        resolve_model("acme/model")
    assert "huggingface-hub" not in str(info.value)


def test_a_relative_folder_that_exists_is_loaded_as_local(isolated_home: Path, elsewhere: Path, tiny_model_dir: Path) -> None:
    shutil.copytree(tiny_model_dir, elsewhere / "acme" / "tiny")
    found = resolve_model("acme/tiny", allow_fetch=False)
    assert found.found_in == "local" and found.path == (elsewhere / "acme" / "tiny").resolve()


def test_offline_hub_id_lists_every_place_tried(isolated_home: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # HF_HUB_OFFLINE=1 comes from conftest; CROSSRANK_OFFLINE is not set.
    monkeypatch.delenv("CROSSRANK_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(elsewhere / "hf-cache"))
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("acme/absent-model")
    message = str(info.value)
    for place in ("local folder", "crossrank cache", "Hugging Face cache", "model source embedded", "huggingface-hub", "offline"):
        assert place in message, (place, message)


_ONLINE_LOOKUP = textwrap.dedent(
    """
    import json, sys
    from crossrank import CrossRankError, resolve_model

    outcome = {}
    for name in sys.argv[1:]:
        try:
            resolve_model(name)
            outcome[name] = ["found", ""]
        except CrossRankError as exc:
            outcome[name] = [type(exc).__name__, str(exc)]
        except Exception as exc:  # what the test is about: nothing else may escape
            outcome[name] = ["escaped " + type(exc).__module__ + "." + type(exc).__name__, str(exc)]
    print(json.dumps(outcome))
    """
)


def test_online_lookups_that_the_hub_cannot_answer_are_model_not_found(tmp_path: Path) -> None:
    """Online mode (no offline variable), with a Hub endpoint that refuses connections."""
    pytest.importorskip("huggingface_hub")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "CROSSRANK_OFFLINE", "HF_HUB_CACHE")}
    env.update(
        HF_ENDPOINT="http://127.0.0.1:9",  # the discard port: nothing listens, the connection is refused
        HF_HOME=str(tmp_path / "hf-home"),
        CROSSRANK_HOME=str(tmp_path / "crossrank-home"),
        HF_HUB_ETAG_TIMEOUT="2",
        HF_HUB_DOWNLOAD_TIMEOUT="2",
    )
    names = ["acme/absent-model", "./my_model"]
    completed = subprocess.run(
        [sys.executable, "-c", _ONLINE_LOOKUP, *names], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    kind, message = outcome["acme/absent-model"]
    assert kind == "ModelNotFoundError", outcome
    for place in ("local folder", "crossrank cache", "Hugging Face cache", "model source embedded", "Hugging Face Hub"):
        assert place in message, (place, message)
    kind, message = outcome["./my_model"]
    assert kind == "ModelNotFoundError", outcome
    assert str(tmp_path / "my_model") in message and "Hub could not" not in message


def test_lookup_errors_are_crossrank_errors(isolated_home: Path) -> None:
    with pytest.raises(CrossRankError):
        resolve_model("")
