"""An SQLite score cache that cannot be used: refused at construction when it never can, skipped
with one WARNING naming the file when it breaks at run time, reopened when deleted in use."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from crossrank import ConfigurationError, Reranker
from crossrank.score_cache import SqliteScoreCache, cache_from_spec

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "the cat and the dog", "berlin is a city in germany"]
LOGGER = "crossrank.score_cache"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


# ----------------------------------------------------------------- refused when it can never work
def test_a_missing_folder_is_refused_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "var" / "cache" / "myapp" / "scores.sqlite"
    with pytest.raises(ConfigurationError, match=r"its folder .*myapp does not exist") as raised:
        SqliteScoreCache(path)
    assert str(path) in str(raised.value)
    with pytest.raises(ConfigurationError, match="does not exist"):
        cache_from_spec(str(path))
    assert not (tmp_path / "var").exists()


def test_the_readme_toml_example_is_refused_without_creating_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    path = tmp_path / "var" / "cache" / "myapp" / "scores.sqlite"
    config = tmp_path / "crossrank.toml"
    config.write_text(f'model = "{tiny_model_dir}"\ncache = "{path}"\n', encoding="utf-8")
    monkeypatch.setenv("CROSSRANK_CONFIG", str(config))
    with pytest.raises(ConfigurationError, match="does not exist") as raised:
        Reranker()
    assert str(path) in str(raised.value)
    assert not (tmp_path / "var").exists()


def test_a_folder_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "scores.sqlite"
    folder.mkdir()
    with pytest.raises(ConfigurationError, match=r"is a folder; expected the path of an SQLite file") as raised:
        SqliteScoreCache(folder)
    assert str(folder) in str(raised.value)


def test_a_path_under_a_regular_file_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "notes.txt"
    plain.write_text("not a folder")
    with pytest.raises(ConfigurationError, match=r"notes.txt is not a folder"):
        SqliteScoreCache(plain / "scores.sqlite")
    with pytest.raises(ConfigurationError, match="does not exist"):
        SqliteScoreCache(plain / "deeper" / "scores.sqlite")


# ----------------------------------------------------------------- broken at run time: one WARNING, no cache
def test_a_corrupt_file_logs_one_warning_and_reranking_goes_on(
    tmp_path: Path, tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "scores.sqlite"
    path.write_bytes(b"this is not an sqlite database " * 200)
    expected = Reranker(str(tiny_model_dir), cache=None).rerank(QUERY, DOCS)
    reranker = Reranker(str(tiny_model_dir), cache=str(path))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        results = [reranker.rerank(QUERY, DOCS) for _ in range(3)]
    for result in results:
        assert [d.index for d in result] == [d.index for d in expected]
        assert [d.raw_score for d in result] == pytest.approx([d.raw_score for d in expected])
        assert result.stats.cache_hits == 0 and result.stats.pairs_scored == len(DOCS)
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert str(path) in warnings[0] and "file is not a database" in warnings[0]
    assert path.read_bytes().startswith(b"this is not an sqlite database")  # left as it was
    # Explicit requests about the contents say what is wrong instead of answering 0.
    with pytest.raises(ConfigurationError, match="cannot be used"):
        len(reranker.cache)  # type: ignore[arg-type]


def test_a_broken_file_that_is_replaced_is_used_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "scores.sqlite"
    path.write_bytes(b"garbage" * 100)
    cache = SqliteScoreCache(path)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        cache.put_many("s", {"a": 1.0})
        assert cache.get_many("s", ["a"]) == {}
        path.unlink()  # the operator removes the broken file
        cache.put_many("s", {"a": 1.0})
        assert cache.get_many("s", ["a"]) == {"a": 1.0}
    assert len(_warnings(caplog)) == 1
    assert any("works again" in r.getMessage() for r in caplog.records if r.name == LOGGER)
    cache.close()


def test_another_applications_database_is_not_written_to(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "app.db"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE customers (name TEXT)")
        connection.commit()
    cache = SqliteScoreCache(path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        cache.put_many("s", {"a": 1.0})
        assert cache.get_many("s", ["a"]) == {}
    assert len(_warnings(caplog)) == 1 and "another application's database" in _warnings(caplog)[0]
    with closing(sqlite3.connect(path)) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"customers"}


def test_a_file_deleted_while_in_use_is_reopened_not_written_on_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "scores.sqlite"
    cache = SqliteScoreCache(path)
    cache.put_many("s", {"a": 1.0})
    assert cache.get_many("s", ["a"]) == {"a": 1.0}
    path.unlink()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert cache.get_many("s", ["a"]) == {}  # the deleted entries are gone, as the operator wanted
        cache.put_many("s", {"b": 2.0})
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "deleted or replaced while in use" in warnings[0] and str(path) in warnings[0]
    assert path.is_file()
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT key, logit FROM scores").fetchall() == [("b", 2.0)]
    cache.close()


def test_a_folder_put_in_place_of_the_file_while_in_use(
    tmp_path: Path, tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "scores.sqlite"
    reranker = Reranker(str(tiny_model_dir), cache=SqliteScoreCache(path))
    assert reranker.rerank(QUERY, DOCS).stats.pairs_scored == len(DOCS)
    for leftover in tmp_path.glob("scores.sqlite*"):
        leftover.unlink()
    path.mkdir()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(3):
            result = reranker.rerank(QUERY, DOCS)
            assert result.stats.cache_hits == 0 and len(result) == len(DOCS)
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "deleted or replaced while in use" in warnings[0] and "is a folder" in warnings[0] and str(path) in warnings[0]


def test_a_removed_folder_is_skipped_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "cache"
    folder.mkdir()
    cache = SqliteScoreCache(folder / "scores.sqlite")
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(3):
            cache.put_many("s", {"a": 1.0})
            assert cache.get_many("s", ["a"]) == {}
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "does not exist" in warnings[0]


def test_strict_caches_raise_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "scores.sqlite"
    path.write_bytes(b"garbage" * 100)
    cache = SqliteScoreCache(path, max_entries=None, strict=True)
    with pytest.raises(ConfigurationError, match="file is not a database") as raised:
        cache.get_many("s", ["a"])
    assert str(path) in str(raised.value)
    assert cache.to_dict() == {"kind": "sqlite", "path": str(path), "max_entries": None, "strict": True}


def test_unbounded_store_never_evicts(tmp_path: Path) -> None:
    cache = SqliteScoreCache(tmp_path / "scores.sqlite", max_entries=None)
    cache.put_many("s", {str(i): float(i) for i in range(1200)})
    assert cache.count("s") == 1200 == len(cache)
    assert len(cache.get_many("s", [str(i) for i in range(1200)])) == 1200
    with pytest.raises(ConfigurationError, match=r"an int >= 1 or None"):
        SqliteScoreCache(tmp_path / "x.sqlite", max_entries=0)
    cache.close()
