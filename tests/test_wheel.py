"""The built wheel contains the core, the adapters and the trainer under one ``crossrank`` package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_all_three_trees_and_data(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next(tmp_path.glob("crossrank-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "crossrank/__init__.py",
        "crossrank/py.typed",
        "crossrank/reranker.py",
        "crossrank/backends/onnx_backend.py",
        "crossrank/adapters/__init__.py",
        "crossrank/training/__init__.py",
        "crossrank/demo/guide.md",
        "crossrank/calibrations/__init__.py",
    ):
        assert required in names, required
    # Every Python file in the three source trees is packaged.
    for root, prefix in ((REPO / "src" / "crossrank", "crossrank"), (REPO / "adapters", "crossrank/adapters"), (REPO / "training", "crossrank/training")):
        for path in root.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            assert f"{prefix}/{path.relative_to(root).as_posix()}" in names, path
    for path in (REPO / "src" / "crossrank" / "calibrations").glob("*.json"):
        assert f"crossrank/calibrations/{path.name}" in names
    assert not any(n.startswith(("tests/", "examples/")) for n in names)
