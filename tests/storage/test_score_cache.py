"""The score cache: LRU bounds, SQLite persistence, hits through a real reranker, invalidation."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from crossrank import Calibration, ConfigurationError, PlattCalibrator, Reranker
from crossrank.score_cache import MemoryScoreCache, SqliteScoreCache, cache_from_spec

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "the cat and the dog", "berlin is a city in germany", ""]


def test_memory_cache_evicts_the_least_recently_used() -> None:
    cache = MemoryScoreCache(max_entries=3)
    cache.put_many("s", {"a": 1.0, "b": 2.0, "c": 3.0})
    assert cache.get_many("s", ["a"]) == {"a": 1.0}  # "a" is now the most recently used
    cache.put_many("s", {"d": 4.0})
    assert cache.get_many("s", ["a", "b", "c", "d"]) == {"a": 1.0, "c": 3.0, "d": 4.0}
    assert len(cache) == 3
    assert cache.get_many("other scope", ["a"]) == {}
    assert cache.clear("s") == 3 and len(cache) == 0


def test_sqlite_cache_persists_bounds_and_clears(tmp_path: Path) -> None:
    path = tmp_path / "scores.sqlite"
    cache = SqliteScoreCache(path, max_entries=3)
    cache.put_many("s", {"a": 1.0, "b": 2.0})
    cache.put_many("t", {"c": 3.0})
    assert cache.get_many("s", ["a"]) == {"a": 1.0}
    cache.put_many("s", {"d": 4.0})
    cache.close()
    reopened = SqliteScoreCache(path, max_entries=3)
    assert len(reopened) == 3
    assert reopened.get_many("s", ["a", "b", "d"]) == {"a": 1.0, "d": 4.0}  # "b" was least recently used
    assert reopened.clear("t") == 1
    assert reopened.clear() == 2
    assert len(reopened) == 0


def test_cache_specs_and_validation(tmp_path: Path) -> None:
    assert cache_from_spec(None) is None
    assert isinstance(cache_from_spec(True), MemoryScoreCache)
    assert cache_from_spec("memory:5").max_entries == 5  # type: ignore[union-attr]
    sqlite_cache = cache_from_spec(str(tmp_path / "x.db"))
    assert isinstance(sqlite_cache, SqliteScoreCache)
    assert cache_from_spec(sqlite_cache.to_dict()).to_dict() == sqlite_cache.to_dict()  # type: ignore[union-attr]
    with pytest.raises(ConfigurationError, match="memory:N"):
        cache_from_spec("memory:lots")
    with pytest.raises(ConfigurationError, match="cache must be"):
        cache_from_spec("redis://somewhere")
    with pytest.raises(ConfigurationError, match="max_entries"):
        MemoryScoreCache(max_entries=0)
    assert not (tmp_path / "x.db").exists()  # building a cache opens nothing


def test_repeated_pairs_are_not_scored_again(tiny_model_dir: Path) -> None:
    uncached = Reranker(str(tiny_model_dir)).rerank(QUERY, DOCS)
    reranker = Reranker(str(tiny_model_dir), cache=MemoryScoreCache())
    first = reranker.rerank(QUERY, DOCS)
    assert first.stats.cache_hits == 0 and first.stats.pairs_scored == len(DOCS)
    second = reranker.rerank(QUERY, DOCS)
    assert second.stats.cache_hits == len(DOCS)
    assert second.stats.pairs_scored == 0 and second.stats.batches == []
    assert second.stats.documents == len(DOCS)
    for result in (first, second):
        assert [d.index for d in result] == [d.index for d in uncached]
        assert [d.raw_score for d in result] == [d.raw_score for d in uncached]
        assert [d.score for d in result] == [d.score for d in uncached]
    # A later turn with one new candidate scores only that one.
    third = reranker.rerank(QUERY, [*DOCS, "a brand new candidate about france"])
    assert third.stats.cache_hits == len(DOCS) and third.stats.pairs_scored == 1
    # score() reads the same cache.
    raw = reranker.score([(QUERY, d) for d in DOCS], raw=True)
    np.testing.assert_allclose(raw, [uncached[[d.index for d in uncached].index(i)].raw_score for i in range(len(DOCS))])


def test_windowed_documents_are_cached_after_pooling(tiny_model_dir: Path) -> None:
    long_doc = "the river flows through paris in france and many boats pass by " * 40
    reranker = Reranker(str(tiny_model_dir), long_documents="window", max_length=64, cache="memory")
    first = reranker.rerank(QUERY, [long_doc, DOCS[0]])
    assert first.stats.windows > 1
    second = reranker.rerank(QUERY, [long_doc, DOCS[0]])
    assert second.stats.cache_hits == 2 and second.stats.windows == 0
    assert [d.raw_score for d in second] == [d.raw_score for d in first]


def test_sqlite_cache_is_shared_across_rerankers_and_stores_no_text(tiny_model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "scores.sqlite"
    first = Reranker(str(tiny_model_dir), cache=str(path)).rerank(QUERY, DOCS)
    trial = Reranker(str(tiny_model_dir), cache=SqliteScoreCache(path))
    second = trial.rerank(QUERY, DOCS)
    assert second.stats.cache_hits == len(DOCS)
    assert [d.raw_score for d in second] == [d.raw_score for d in first]
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT scope, key FROM scores").fetchall()
    assert len(rows) == len(DOCS)
    stored = " ".join(" ".join(row) for row in rows)
    assert "paris" not in stored and "france" not in stored


def test_cache_misses_when_the_calibrator_changes(tiny_model_dir: Path) -> None:
    cache = MemoryScoreCache()
    Reranker(str(tiny_model_dir), cache=cache).rerank(QUERY, DOCS)
    recalibrated = Reranker(str(tiny_model_dir), cache=cache, calibration=Calibration(PlattCalibrator(2.0, -1.0)))
    result = recalibrated.rerank(QUERY, DOCS)
    assert result.stats.cache_hits == 0
    assert recalibrated.rerank(QUERY, DOCS).stats.cache_hits == len(DOCS)


def test_cache_misses_when_scoring_settings_change(tiny_model_dir: Path) -> None:
    cache = MemoryScoreCache()
    Reranker(str(tiny_model_dir), cache=cache).rerank(QUERY, DOCS)
    assert Reranker(str(tiny_model_dir), cache=cache, max_length=32).rerank(QUERY, DOCS).stats.cache_hits == 0
    assert Reranker(str(tiny_model_dir), cache=cache, backend="torch").rerank(QUERY, DOCS).stats.cache_hits == 0
    # batch_size does not change a score, so it shares the entries.
    assert Reranker(str(tiny_model_dir), cache=cache, batch_size=1).rerank(QUERY, DOCS).stats.cache_hits == len(DOCS)


def test_cache_misses_when_the_model_changes(tiny_model_copy: Path) -> None:
    cache = MemoryScoreCache()
    Reranker(str(tiny_model_copy), cache=cache).rerank(QUERY, DOCS)
    # New weights in place (same folder, same name): the file fingerprint changes.
    weights = tiny_model_copy / "model.onnx"
    info = weights.stat()
    os.utime(weights, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    assert Reranker(str(tiny_model_copy), cache=cache).rerank(QUERY, DOCS).stats.cache_hits == 0
    # A new revision recorded in crossrank.json.
    from crossrank import ModelConfig

    config = ModelConfig.load(tiny_model_copy)
    config.revision = "v2"
    config.save(tiny_model_copy)
    reranker = Reranker(str(tiny_model_copy), cache=cache)
    assert reranker.model_id.endswith("@v2")
    assert reranker.rerank(QUERY, DOCS).stats.cache_hits == 0


def test_cache_option_from_environment_and_round_trip(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROSSRANK_CACHE", str(tmp_path / "env.sqlite"))
    reranker = Reranker(str(tiny_model_dir))
    assert isinstance(reranker.cache, SqliteScoreCache)
    data = reranker.to_dict()
    assert data["cache"] == {"kind": "sqlite", "path": str(tmp_path / "env.sqlite"), "max_entries": 1_000_000}
    monkeypatch.delenv("CROSSRANK_CACHE")
    rebuilt = Reranker.from_dict(json.loads(json.dumps(data)))
    assert rebuilt.to_dict() == data
    reranker.rerank(QUERY, DOCS)
    assert rebuilt.rerank(QUERY, DOCS).stats.cache_hits == len(DOCS)


def test_benchmark_command_writes_its_section(tiny_model_dir: Path, tmp_path: Path) -> None:
    from crossrank.benchmarks.score_cache import main as benchmark

    data = tmp_path / "beir"
    data.mkdir()
    corpus = [f"document {i} about paris and france number {i}" for i in range(8)]
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": str(i), "text": t}) + "\n" for i, t in enumerate(corpus)))
    (data / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "paris france"}) + "\n" + json.dumps({"_id": "q2", "text": "document number"}) + "\n"
    )
    output = tmp_path / "BENCHMARKS.md"
    argv = ["--data", str(data), "--queries", "2", "--candidates", "4", "--new", "1", "--repeats", "2"]
    assert benchmark([*argv, "--model", str(tiny_model_dir), "--output", str(output)]) == 0
    text = output.read_text()
    assert "<!-- section:score-cache -->" in text and "<!-- /section:score-cache -->" in text
    rows = {line.split("|")[1].strip(): line.split("|")[5].strip() for line in text.splitlines() if line.startswith("| ")}
    assert rows["no cache"] == "0/8"
    assert rows["memory cache, repeated turn (all hits)"] == "16/16"
    assert rows["SQLite cache, fresh reranker (all hits)"] == "16/16"
    assert rows["memory cache, later turn (1 of 4 new)"] == "6/8"
