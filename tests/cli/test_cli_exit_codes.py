"""Exit codes of the real ``python -m crossrank`` process: 2 and one line for a user error, 1 and one line otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _crossrank(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crossrank", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        cwd=cwd,
        timeout=300,
    )


def _one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture()
def docs_file(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text('"paris is the capital of france"\n"the cat and the dog"\n', encoding="utf-8")
    return path


def test_a_crossrank_error_exits_2_with_one_line(tiny_model_dir: Path, docs_file: Path) -> None:
    done = _crossrank("rerank", "--model", str(tiny_model_dir), "-d", str(docs_file), "-q", "   ")
    assert done.returncode == 2
    assert _one_line(done.stderr).startswith("crossrank: error: query must contain")


def test_a_missing_feedback_log_exits_2_with_one_line(tmp_path: Path) -> None:
    done = _crossrank("feedback", "export", str(tmp_path / "absent.jsonl"))
    assert done.returncode == 2
    assert str(tmp_path / "absent.jsonl") in _one_line(done.stderr)


def _buggy_calibrator_plugin(site: Path) -> dict[str, str]:
    """A real installed plugin whose calibrator has a bug: loading it raises a RuntimeError."""
    (site / "buggy_plugin").mkdir(parents=True)
    (site / "buggy_plugin" / "__init__.py").write_text(
        "from crossrank import hookimpl\n"
        "from crossrank.calibration import Calibrator\n"
        "class Buggy(Calibrator):\n"
        "    kind = 'buggy'\n"
        "    def transform(self, logits): return logits\n"
        "    def params(self): return {}\n"
        "    @classmethod\n"
        "    def from_params(cls, params): raise RuntimeError('calibrator plugin bug')\n"
        "@hookimpl\n"
        "def crossrank_calibrators():\n"
        "    return [Buggy]\n"
    )
    dist = site / "buggy_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: buggy-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[crossrank]\nbuggy = buggy_plugin\n")
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_an_unexpected_error_exits_1_with_one_line_and_a_hint(tiny_model_copy: Path, docs_file: Path, tmp_path: Path) -> None:
    env = _buggy_calibrator_plugin(tmp_path / "site")
    calibration = {"format": "crossrank-calibration", "version": 1, "calibrator": {"kind": "buggy"}}
    (tiny_model_copy / "calibration.json").write_text(json.dumps(calibration))
    argv = ["rerank", "--model", str(tiny_model_copy), "-d", str(docs_file), "-q", "capital"]

    done = _crossrank(*argv, env=env)
    assert done.returncode == 1, done.stderr
    line = _one_line(done.stderr)
    assert "RuntimeError: calibrator plugin bug" in line
    assert "run with -v for the traceback" in line

    verbose = _crossrank("-v", *argv, env=env)
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    assert "from_params" in verbose.stderr  # the frame that raised
    assert verbose.stderr.rstrip().splitlines()[-1].startswith("crossrank:")

