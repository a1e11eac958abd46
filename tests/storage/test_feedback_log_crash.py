"""A JSONL feedback log survives a kill at any byte: a torn record never blocks an export nor swallows the next one."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from crossrank import ScoredDocument
from crossrank.feedback import FeedbackLog, export_interactions

SHOWN = [ScoredDocument(0, "paris is the capital of france", 0.9, 2.1, rank=1), ScoredDocument(1, "a cat", 0.1, -2.0, rank=2)]


def _export(path: Path) -> tuple[list[dict], FeedbackLog]:
    log = FeedbackLog(path)
    buffer = io.StringIO()
    export_interactions(log, buffer)
    return [json.loads(line) for line in buffer.getvalue().splitlines()], log


def test_a_torn_tail_does_not_glue_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    log = FeedbackLog(path)
    first = log.record_shown("capital", SHOWN, query_id="q1")
    complete = path.read_bytes()
    # What a writer killed half way through its next record leaves behind: no trailing newline.
    FeedbackLog(path).record_shown("torn", SHOWN, query_id="q-torn")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(complete) + (len(whole) - len(complete)) // 2])

    later = FeedbackLog(path)  # a new process opening the log after the kill
    second = later.record_shown("capital again", SHOWN, query_id="q2")
    later.record_used(second, 0, kind="click")
    log.record_used(first, SHOWN[0])  # the first writer goes on too

    rows, reader = _export(path)
    assert [row["query_id"] for row in rows] == ["q1", "q2"]
    assert all(row["clicked"] == [row["shown"][0]] for row in rows)
    assert reader.skipped == 1
    assert "line 2" in reader.corrupt_records[0]
    assert str(path) in reader.corrupt_records[0]


def test_a_torn_multibyte_character_does_not_block_the_export(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    log = FeedbackLog(path, store_text=True)
    log.record_shown("東京の首都", SHOWN, query_id="q1")
    data = path.read_bytes()
    cut = data.index("京".encode("utf-8")) + 1  # inside a three-byte character
    path.write_bytes(data + data[:cut])
    log.record_shown("paris", SHOWN, query_id="q2")
    rows, reader = _export(path)
    assert [row["query_id"] for row in rows] == ["q1", "q2"]
    assert reader.skipped == 1


@pytest.mark.parametrize(
    "bad",
    [
        "not json at all",
        '{"event": "shown"}',
        '{"event": "shown", "impression": "x", "time": "t", "query_hash": "h", "documents": "nope"}',
        '{"event": "shown", "impression": "x", "time": "t", "query_hash": "h", "documents": [{"id": 3}]}',
        '{"event": "used"}',
        '{"event": "unknown"}',
        "[1, 2, 3]",
        "[" * 100_000,
        "1" * 5000,
    ],
)
def test_corrupt_records_are_skipped_and_counted(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "feedback.jsonl"
    log = FeedbackLog(path)
    impression = log.record_shown("capital", SHOWN, query_id="q1")
    with path.open("a", encoding="utf-8") as handle:
        handle.write(bad + "\n")
    log.record_used(impression, 0)
    rows, reader = _export(path)
    assert len(rows) == 1 and rows[0]["clicked"] == [rows[0]["shown"][0]]
    assert reader.skipped == 1 and "line 2" in reader.corrupt_records[0]


_WRITER = textwrap.dedent(
    """
    import sys
    from crossrank import ScoredDocument
    from crossrank.feedback import FeedbackLog

    log = FeedbackLog(sys.argv[1], store_text=True)
    big = "x" * (8 << 20)
    shown = [ScoredDocument(0, big, 0.5, 0.0, rank=1)]
    number = 0
    while True:
        number += 1
        log.record_shown("query", shown, query_id=f"big-{number}")
    """
)


def test_a_writer_killed_mid_append_leaves_a_readable_log(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    FeedbackLog(path).record_shown("before", SHOWN, query_id="before")
    kills = torn = 0
    while kills < 20 and torn < 2:
        writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)])
        start = path.stat().st_size
        deadline = time.monotonic() + 120
        while path.stat().st_size <= start + (1 << 20) and time.monotonic() < deadline:
            time.sleep(0.002)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        kills += 1
        torn += not path.read_bytes().endswith(b"\n")
        FeedbackLog(path).record_shown("after", SHOWN, query_id=f"after-{kills}")
    if not torn:
        pytest.skip("no kill landed inside a record on this machine")
    rows, reader = _export(path)
    ids = [row["query_id"] for row in rows]
    assert ids[0] == "before"
    assert [i for i in ids if i.startswith("after-")] == [f"after-{n}" for n in range(1, kills + 1)]
    assert all(i == "before" or i.startswith(("after-", "big-")) for i in ids)
    assert reader.skipped == torn
