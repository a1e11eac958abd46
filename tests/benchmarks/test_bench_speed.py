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


def test_reduced_speed_benchmark_measures_the_graph_levers(tmp_path: Path, scifact_dir: Path, embedded_model_dir: Path,
                                                          tiny_model_dir: Path) -> None:
    output = tmp_path / "BENCHMARKS.md"
    configs = (f"crossrank-pertoken,crossrank-truncate,crossrank-pertensor,crossrank-select-pertensor@128,crossrank-static,onnx-fp32,onnx-fp32-fused,"
               f"model-select={tiny_model_dir}@64")
    done = subprocess.run(
        [sys.executable, "-m", "crossrank", "bench", "speed", "--data", str(scifact_dir), "--queries", "2", "--depth", "3",
         "--quality-queries", "3", "--configs", configs, "--repeats", "1", "--latency-runs", "1", "--no-cold-start",
         "--output", str(output), "--section", "speed-levers"],
        capture_output=True, text=True, timeout=1200,
    )
    assert done.returncode == 0, done.stderr
    section = output.read_text().split("<!-- section:speed-levers -->")[1]
    assert "on the first 3 judged queries x the same BM25 depth (an untimed pass" in section
    assert "quality crossrank-pertoken: nDCG@10" in done.stderr
    labels = ("per-token rewrite of the graph, length-sorted token-budget batches, truncation",
              "one call at a time (all cores on one pair)", "crossrank default (an older name for it), max_length 128",
              "crossrank default but truncating long documents", "static int8 ONNX (QDQ", "fp32 ONNX export of the imported weights", "transformer fusions",
              f"model folder `{tiny_model_dir}`, query-aware sentence selection, max_length 64")
    for label in labels:
        row = next(line for line in section.splitlines() if label in line)
        assert float(row.split("|")[2].split()[0]) > 0
        assert 0.0 <= float(row.split("|")[6]) <= 1.0  # nDCG@10 of the configuration's own scores


def test_per_tensor_embedded_model_is_the_shipped_graph_scored_pair_by_pair(embedded_model_dir: Path) -> None:
    import numpy as np

    from crossrank import Reranker

    pairs = [("how many people live in berlin", "Berlin has 3.5 million inhabitants."),
             ("how many people live in berlin", "Paris is the capital of France, a country in Europe with a long history."),
             ("what causes rain", "Rain forms when water vapour condenses into droplets heavy enough to fall.")]
    per_tensor = Reranker(str(embedded_model_dir), backend_options={"activation_quantization": "per-tensor"}).warm_up()
    assert per_tensor._load().backend.quantization == "dynamic-int8"
    together = per_tensor.score(pairs, raw=True)
    assert together.tolist() == [per_tensor.score([p], raw=True)[0] for p in pairs]
    assert Reranker(str(embedded_model_dir)).warm_up().quantization == "dynamic-int8"  # the default: auto
    per_token = Reranker(str(embedded_model_dir), backend_options={"activation_quantization": "per-token"}).score(pairs, raw=True)
    assert not np.allclose(together, per_token, atol=1e-6)
    assert np.abs(together - per_token).max() < 0.5  # the same int8 weights, a coarser activation scale
    assert together[0] > together[1]


def test_configuration_names_and_model_folders_are_parsed(tmp_path: Path) -> None:
    from crossrank.benchmarks.speed import describe_configuration, parse_configuration
    from crossrank.errors import InvalidInputError

    assert parse_configuration("crossrank-select@128", 256) == ("crossrank-select", 128)
    assert parse_configuration("flashrank", 256) == ("flashrank", 256)
    assert parse_configuration(f"model={tmp_path}@96", 256) == (f"model={tmp_path}", 96)
    assert describe_configuration(f"model={tmp_path}", 256) == f"crossrank int8 ONNX on model folder `{tmp_path}`, max_length 256"
    with pytest.raises(InvalidInputError, match="expected model=FOLDER with an existing model folder"):
        parse_configuration(f"model={tmp_path / 'missing'}", 256)
    with pytest.raises(InvalidInputError, match="max_length after '@' must be an integer >= 16"):
        parse_configuration("crossrank@8", 256)
    with pytest.raises(InvalidInputError, match="unknown configuration 'bert'"):
        parse_configuration("bert", 256)


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


def test_a_speed_profile_is_a_configuration(isolated_home: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    from crossrank.benchmarks.speed import build_scorer, describe_configuration, parse_configuration
    from crossrank.errors import ModelNotFoundError
    from crossrank.models.profiles import register_profile

    with pytest.raises(ModelNotFoundError, match="speed profile 'fast' is not registered"):
        parse_configuration("profile=fast", 256)
    register_profile("fast", tiny_model_dir)
    assert parse_configuration("profile=fast@64", 256) == ("profile=fast", 64)
    assert describe_configuration("profile=fast", 256).endswith("at its defaults, its calibrated max_length")
    assert describe_configuration("profile=fast@64", 256).endswith("at its defaults, max_length 64")
    score = build_scorer("profile=fast", model_dir=tiny_model_dir, max_length=256, workdir=tmp_path)
    scores = score("a query", ["one passage", "another passage"])
    assert len(scores) == 2
    from crossrank import Reranker

    direct = Reranker(str(tiny_model_dir)).score([("a query", "one passage"), ("a query", "another passage")], raw=True)
    assert list(scores) == pytest.approx(list(direct), abs=1e-5)
