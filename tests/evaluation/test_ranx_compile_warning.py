"""The ranking metrics print nothing on stderr, even when numba compiles ranx for the first time
(it would otherwise warn about a loop-index cast, with raw terminal colour codes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import warnings
from crossrank.evaluation.metrics import ranking_metrics
qrels = {"q": {"a": 1, "b": 2}, "r": {"c": 1}}
run = {"q": {"a": 0.2, "b": 0.9, "c": 0.5}, "r": {"c": 0.1}}
print(ranking_metrics(qrels, run, ["ndcg@10", "mrr@10"]))
# The filter is local: a warning of the same category raised afterwards is still shown.
from numba.core.errors import NumbaTypeSafetyWarning
warnings.warn("outside the metrics", NumbaTypeSafetyWarning)
"""


@pytest.mark.slow
def test_first_compilation_prints_no_numba_warning(tmp_path: Path) -> None:
    pytest.importorskip("ranx")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")  # empty: ranx's metrics are compiled now
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "'mrr@10': 1.0" in done.stdout
    assert any((tmp_path / "numba-cache").rglob("*.nbi")), "ranx was not compiled in this process"
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr  # only the warning raised outside the metrics
    assert "NumbaTypeSafetyWarning" in lines[0] and "outside the metrics" in lines[0]
    assert "unsafe cast" not in done.stderr
