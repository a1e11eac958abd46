"""``crossrank eval``'s score cache is the runtime cache family (one key, one SQLite store) used
one scorer scope at a time; a precomputed scorer id can name the scope."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossrank import ConfigurationError, Reranker
from crossrank.cli import main
from crossrank.evaluation.cache import EVAL_CACHE_FILE, EvalScoreCache, scorer_scope, scorer_settings
from crossrank.score_cache import ScopedScoreCache, SqliteScoreCache, pair_key, scope_digest


def test_the_eval_cache_is_a_scope_of_the_shared_sqlite_store(tmp_path: Path) -> None:
    settings = {"model": "m@1", "max_length": 64}
    cache = EvalScoreCache(tmp_path / "eval-cache", settings)
    assert isinstance(cache, ScopedScoreCache) and isinstance(cache.store, SqliteScoreCache)
    assert cache.store.max_entries is None and cache.store.strict
    assert cache.scope == scope_digest(settings) == scorer_scope(settings)
    assert cache.key("q", "passage") == pair_key(cache.scope, "q", "passage")
    cache.put_many({cache.key("q", "passage"): 1.25})
    cache.close()
    # The runtime cache class reads the same file with the same key function.
    runtime = SqliteScoreCache(tmp_path / "eval-cache" / EVAL_CACHE_FILE)
    assert runtime.get_many(scope_digest(settings), [pair_key(scope_digest(settings), "q", "passage")]) == {
        pair_key(scope_digest(settings), "q", "passage"): 1.25
    }
    reopened = EvalScoreCache(tmp_path / "eval-cache", settings)
    assert len(reopened) == 1 and reopened.missing([cache.key("q", "passage"), cache.key("q", "other")]) == [cache.key("q", "other")]
    assert len(EvalScoreCache(tmp_path / "eval-cache", {**settings, "max_length": 128})) == 0  # another scorer
    runtime.close()
    reopened.close()


def test_a_precomputed_scorer_id_is_the_scope(tmp_path: Path, tiny_model_dir: Path) -> None:
    reranker = Reranker(str(tiny_model_dir), max_length=64)
    plain = scorer_settings(reranker)
    named = scorer_settings(reranker, scorer_id="engine-scorer-id")
    assert named == {**plain, "scorer_id": "engine-scorer-id"}
    assert EvalScoreCache(tmp_path, named).scope == "engine-scorer-id"
    assert EvalScoreCache(tmp_path, plain).scope == scope_digest(plain)
    with pytest.raises(ConfigurationError, match="scorer_id must be a non-empty string"):
        scorer_settings(reranker, scorer_id="")


def test_an_unusable_cache_folder_is_refused_naming_it(tmp_path: Path) -> None:
    plain = tmp_path / "plain-file"
    plain.write_text("x")
    with pytest.raises(ConfigurationError, match=r"evaluation cache folder .*plain-file/cache cannot be created"):
        EvalScoreCache(plain / "cache", {"model": "m@1"})


def test_eval_with_a_corrupt_cache_exits_2_naming_the_file(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("bm25s")
    pytest.importorskip("ranx")
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": f"note {i} about lava"}) + "\n" for i in range(4)))
    (data / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "lava"}) + "\n")
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\td1\t1\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / EVAL_CACHE_FILE).write_bytes(b"not a database " * 100)
    code = main(["eval", str(data), "--depth", "4", "--model", str(tiny_model_dir), "--max-length", "64",
                 "--cache-dir", str(cache), "--out", str(tmp_path / "report.json"), "--no-plots"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and str(cache / EVAL_CACHE_FILE) in err and "file is not a database" in err
    assert not (tmp_path / "report.json").exists()
