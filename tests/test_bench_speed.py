"""``crossrank bench speed`` in a reduced form: it runs, measures every configuration, writes its section."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crossrank.benchmarks.speed import ConfigResult, Workload, format_report, _ndcg10

pytestmark = [pytest.mark.slow, pytest.mark.embedded]


def test_reduced_speed_benchmark_writes_its_section(tmp_path: Path, scifact_dir: Path, embedded_model_dir: Path) -> None:
    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\n<!-- section:other -->\nkept\n<!-- /section:other -->\n")
    done = subprocess.run(
        [sys.executable, "-m", "crossrank", "bench", "speed", "--data", str(scifact_dir), "--queries", "2", "--depth", "3",
         "--repeats", "1", "--latency-runs", "1", "--no-cold-start", "--output", str(output), "--section", "speed-ci"],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr
    text = output.read_text()
    assert "kept" in text, "other sections must survive"
    section = text.split("<!-- section:speed-ci -->")[1].split("<!-- /section:speed-ci -->")[0]
    for label in ("crossrank default", "PyTorch backend", "sentence-transformers CrossEncoder", "FlashRank"):
        row = next(line for line in section.splitlines() if label in line)
        pairs_per_second = float(row.split("|")[2].split()[0])
        assert pairs_per_second > 0
    assert "- Command:" in section and "- Machine:" in section


def test_ndcg_of_a_perfect_and_a_reversed_ranking() -> None:
    workload = Workload(["q"], ["query"], [["a", "b", "c"]], [["x", "y", "z"]], {"q": {"a": 1}})
    assert _ndcg10(workload, [[3.0, 2.0, 1.0]]) == pytest.approx(1.0)
    assert _ndcg10(workload, [[1.0, 2.0, 3.0]]) == pytest.approx(0.5)


def test_report_states_ratio_against_the_reference() -> None:
    workload = Workload(["q"], ["query"], [["a"]], [["x"]], {"q": {"a": 1}})
    fast = ConfigResult("crossrank", throughput=[40.0, 44.0, 42.0], latency={25: [0.1, 0.2]}, ndcg10=0.7)
    slow = ConfigResult("sentence-transformers", throughput=[10.0, 10.5, 11.0], latency={25: [0.4, 0.5]}, ndcg10=0.7)
    report = format_report([fast, slow], {}, workload, max_length=256, repeats=3)
    assert "| 42.0 (40.0–44.0) | 4.00x |" in report
    assert "max_length 256" in report
