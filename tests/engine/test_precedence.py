"""One precedence in every entry point: explicit argument > environment > file > default.

A per-call ``None`` (or an omitted argument) keeps the configured value; ``False`` switches a
threshold or top-k off.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crossrank import CrossRankError, Reranker
from crossrank.config import RerankerConfig

QUERY = "capital of france"
DOCS = ["paris is the capital of france", "the cat and the dog", "berlin is a city in germany", "water"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CROSSRANK_") and name not in ("CROSSRANK_HOME", "CROSSRANK_EMBEDDED_WHEEL"):
            monkeypatch.delenv(name)


def _overlap(model_dir: Path, manager, **options) -> Reranker:
    return Reranker.from_config(RerankerConfig(model=str(model_dir), backend="overlap", **options), plugin_manager=manager)


def test_per_call_none_keeps_the_configured_value(overlap_model_dir: Path, overlap_plugin_manager) -> None:
    reranker = _overlap(overlap_model_dir, overlap_plugin_manager, top_k=1, threshold=0.9)
    assert len(reranker.rerank(QUERY, DOCS, top_k=None, threshold=False)) == 1
    assert len(reranker.rerank(QUERY, DOCS, threshold=False)) == 1
    assert len(reranker.rerank(QUERY, DOCS, top_k=False, threshold=False)) == len(DOCS)
    strict = reranker.rerank(QUERY, DOCS, threshold=None)
    assert strict.threshold == 0.9 and len(strict) <= 1
    assert reranker.rerank(QUERY, DOCS, threshold=1.0).abstained
    many = reranker.score_many([(QUERY, DOCS), ("water", DOCS)], top_k=None, threshold=False)
    assert [len(r) for r in many] == [1, 1]


def test_environment_applies_to_the_engine_and_explicit_arguments_win(monkeypatch: pytest.MonkeyPatch, overlap_model_dir: Path) -> None:
    monkeypatch.setenv("CROSSRANK_TOP_K", "1")
    assert Reranker(str(overlap_model_dir)).top_k == 1
    assert Reranker(str(overlap_model_dir), top_k=2).top_k == 2
    assert Reranker(str(overlap_model_dir), top_k=None).top_k is None  # an explicit None is a value


def _crossrank(*args: str, env: dict[str, str], stdin: str) -> subprocess.CompletedProcess[str]:
    import os

    environ = {k: v for k, v in os.environ.items() if not k.startswith("CROSSRANK_") or k == "CROSSRANK_HOME"}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "crossrank", *args], input=stdin, capture_output=True, text=True, env=environ, timeout=300
    )


@pytest.mark.slow
def test_cli_rerank_reads_top_k_and_threshold_from_environment_and_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    docs = "".join(json.dumps(d) + "\n" for d in DOCS)
    common = ("rerank", "-q", QUERY, "-d", "-", "--model", str(tiny_model_dir), "--format", "json")
    shown = json.loads(_crossrank(*common, env={"CROSSRANK_TOP_K": "1"}, stdin=docs).stdout)
    assert len(shown["documents"]) == 1
    config = tmp_path / "crossrank.toml"
    config.write_text("top_k = 2\nthreshold = 0.0\n", encoding="utf-8")
    from_file = json.loads(_crossrank(*common, env={"CROSSRANK_CONFIG": str(config)}, stdin=docs).stdout)
    assert len(from_file["documents"]) == 2 and from_file["threshold"] == 0.0
    flag = json.loads(_crossrank(*common, "--top-k", "3", env={"CROSSRANK_CONFIG": str(config)}, stdin=docs).stdout)
    assert len(flag["documents"]) == 3
    # What `config show` reports is what `rerank` used.
    show = json.loads(_crossrank("config", "show", "--format", "json", env={"CROSSRANK_CONFIG": str(config)}, stdin="").stdout)
    assert show["options"]["top_k"] == {"value": 2, "source": f"file ({config})"}


def test_cli_missing_model_folder_exits_2_with_one_line(tmp_path: Path) -> None:
    done = _crossrank("rerank", "-q", "x", "-d", "-", "--model", "./missing-model-folder", env={}, stdin='"a"\n')
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "missing-model-folder" in done.stderr and "Traceback" not in done.stderr


def _adapters(reranker_kwargs: dict) -> list:
    built = []
    pytest.importorskip("haystack")
    from crossrank.adapters.haystack import CrossRankRanker
    from crossrank.adapters.langchain import CrossRankCompressor
    from crossrank.adapters.llama_index import CrossRankRerank

    for cls in (CrossRankRanker, CrossRankCompressor, CrossRankRerank):
        built.append(cls(**reranker_kwargs))
    return built


def test_adapters_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    monkeypatch.setenv("CROSSRANK_MODEL", str(missing))
    monkeypatch.setenv("CROSSRANK_DEVICE", "cuda:3")
    for adapter in _adapters({}):
        assert adapter.reranker.model == str(missing) and adapter.reranker.device == "cuda:3"
        with pytest.raises(CrossRankError, match="no-such-model"):
            adapter.warm_up()
    # An explicit argument wins over the environment.
    for adapter in _adapters({"device": "cpu"}):
        assert adapter.reranker.device == "cpu"


def test_adapters_take_a_configuration_that_ignores_the_environment(monkeypatch: pytest.MonkeyPatch, overlap_model_dir: Path) -> None:
    monkeypatch.setenv("CROSSRANK_MODEL", "/somewhere/else")
    config = RerankerConfig(model=str(overlap_model_dir), max_length=32)
    for adapter in _adapters({"config": config}):
        assert adapter.reranker.config == config
    with pytest.raises(CrossRankError, match="not both"):
        _adapters({"config": config, "max_length": 16})
