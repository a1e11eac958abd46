"""An SQLite feedback log keeps one connection, shared safely by threads and by several processes on one file."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from crossrank import ScoredDocument
from crossrank.feedback import FeedbackLog, export_interactions

SHOWN = [ScoredDocument(0, "paris is the capital of france", 0.9, 2.1, rank=1), ScoredDocument(1, "a cat", 0.1, -2.0, rank=2)]

_connects: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if event == "sqlite3.connect" and _connects is not None:
        _connects.append(str(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one only counts while a test asks it to


def _count_connections(action) -> list[str]:  # type: ignore[no-untyped-def]
    global _connects
    _connects = []
    try:
        action()
        return _connects
    finally:
        _connects = None


def _rows(path: Path) -> list[dict]:
    buffer = io.StringIO()
    export_interactions(FeedbackLog(path), buffer)
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.mark.parametrize("suffix", [".sqlite", ".db"])
def test_events_share_one_connection(tmp_path: Path, suffix: str) -> None:
    log = FeedbackLog(tmp_path / f"feedback{suffix}")

    def record() -> None:
        for number in range(30):
            impression = log.record_shown("capital", SHOWN, query_id=f"q{number}")
            log.record_used(impression, 0)

    opened = _count_connections(record)
    assert len(opened) == 1, opened
    assert len(_count_connections(record)) == 0  # the next events reuse it
    log.close()
    rows = _rows(log.path)
    assert [row["query_id"] for row in rows] == [f"q{n}" for n in range(30)] * 2
    assert all(row["clicked"] == [row["shown"][0]] for row in rows)


def test_a_closed_log_reopens_on_the_next_event(tmp_path: Path) -> None:
    with FeedbackLog(tmp_path / "feedback.sqlite") as log:
        log.record_shown("capital", SHOWN, query_id="first")
    log.record_shown("capital", SHOWN, query_id="second")  # reopened after close
    log.close()
    assert [row["query_id"] for row in _rows(log.path)] == ["first", "second"]


def test_threads_write_through_one_log(tmp_path: Path) -> None:
    log = FeedbackLog(tmp_path / "feedback.sqlite")
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(thread: int) -> None:
        try:
            barrier.wait()
            for number in range(25):
                impression = log.record_shown("capital", SHOWN, query_id=f"t{thread}-{number}")
                log.record_used(impression, SHOWN[1], kind="vote")
            log.impressions()  # reading while others write
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = _rows(log.path)
    assert sorted(row["query_id"] for row in rows) == sorted(f"t{t}-{n}" for t in range(8) for n in range(25))
    assert all(row["clicked"] == [row["shown"][1]] for row in rows)


_PROCESS_WRITER = textwrap.dedent(
    """
    import sys
    from crossrank import ScoredDocument
    from crossrank.feedback import FeedbackLog

    log = FeedbackLog(sys.argv[1])
    shown = [ScoredDocument(0, "paris", 0.9, 2.0, rank=1)]
    for number in range(40):
        impression = log.record_shown("capital", shown, query_id=f"{sys.argv[2]}-{number}")
        log.record_used(impression, 0)
    """
)


def test_processes_write_to_one_file(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite"
    writers = [subprocess.Popen([sys.executable, "-c", _PROCESS_WRITER, str(path), f"p{p}"]) for p in range(3)]
    assert [writer.wait(timeout=300) for writer in writers] == [0, 0, 0]
    rows = _rows(path)
    assert sorted(row["query_id"] for row in rows) == sorted(f"p{p}-{n}" for p in range(3) for n in range(40))
    assert all(len(row["clicked"]) == 1 for row in rows)


def test_durable_log_writes_every_event(tmp_path: Path) -> None:
    for suffix in (".jsonl", ".sqlite"):
        log = FeedbackLog(tmp_path / f"durable{suffix}", durable=True)
        impression = log.record_shown("capital", SHOWN, query_id="q")
        log.record_used(impression, 1)
        log.close()
        assert [row["clicked"] for row in _rows(log.path)] == [[_rows(log.path)[0]["shown"][1]]]


def test_a_corrupt_sqlite_log_names_the_file(tmp_path: Path) -> None:
    from crossrank import InvalidInputError

    path = tmp_path / "feedback.sqlite"
    path.write_bytes(b"not a database" * 200)
    with pytest.raises(InvalidInputError, match=str(path)):
        FeedbackLog(path).impressions()
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE unrelated (x)")
    with pytest.raises(InvalidInputError, match="not a crossrank feedback log"):
        FeedbackLog(other).impressions()


def test_a_rotated_log_is_written_to_the_new_file(tmp_path: Path) -> None:
    log = FeedbackLog(tmp_path / "feedback.sqlite")
    log.record_shown("capital", SHOWN, query_id="old")
    log.path.rename(tmp_path / "feedback.1.sqlite")
    for suffix in ("-wal", "-shm"):
        moved = tmp_path / f"feedback.sqlite{suffix}"
        if moved.exists():
            moved.rename(tmp_path / f"feedback.1.sqlite{suffix}")
    log.record_shown("capital", SHOWN, query_id="new")
    log.close()
    assert [row["query_id"] for row in _rows(log.path)] == ["new"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    log = FeedbackLog(tmp_path / "feedback.sqlite")
    log.record_shown("capital", SHOWN, query_id="parent-before")
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            for number in range(5):
                log.record_shown("capital", SHOWN, query_id=f"child-{number}")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    log.record_shown("capital", SHOWN, query_id="parent-after")
    log.close()
    assert sorted(row["query_id"] for row in _rows(log.path)) == sorted(
        ["parent-before", "parent-after", *(f"child-{n}" for n in range(5))]
    )
