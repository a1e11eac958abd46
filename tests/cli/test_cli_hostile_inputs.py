"""Every input the command line reads yields a result or exit 2 with one line; its JSON output is strict JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from crossrank.feedback import FeedbackLog


def _crossrank(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "crossrank", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        timeout=300,
        **kwargs,
    )


def _assert_exit_2_one_line(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("crossrank: error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _rerank(model: Path, documents: str, *extra: str) -> list[str]:
    return ["rerank", "--model", str(model), "-q", "capital of france", "-d", documents, *extra]


DOCS = '"paris is the capital of france"\n{"text": "the cat and the dog"}\n'


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"text": "x", "n": ' + "7" * 5000 + "}", "digits"),
        ("9" * 5000, "digits"),
    ],
    ids=["deep-nesting", "huge-int-in-object", "huge-int"],
)
def test_hostile_json_lines_exit_2(tiny_model_dir: Path, tmp_path: Path, line: str, fragment: str) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('"fine"\n' + line + "\n", encoding="utf-8")
    _assert_exit_2_one_line(_crossrank(*_rerank(tiny_model_dir, str(path))), str(path), "line 2", fragment)


def test_stdin_closed_exits_2(tiny_model_dir: Path) -> None:
    command = " ".join([sys.executable, "-m", "crossrank", *_rerank(tiny_model_dir, "-")]) + " <&-"
    done = subprocess.run(["sh", "-c", command.replace("capital of france", "'capital of france'")],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    _assert_exit_2_one_line(done, "standard input")


def test_documents_from_a_fifo_are_read(tiny_model_dir: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "docs.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as handle:  # blocks until the reader opens it
            handle.write(DOCS)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    done = _crossrank(*_rerank(tiny_model_dir, str(fifo), "--format", "json"))
    writer.join(timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["documents"]) == 2


def test_documents_from_process_substitution_are_read(tiny_model_dir: Path) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, DOCS.encode("utf-8"))
    os.close(write_end)
    try:
        done = _crossrank(*_rerank(tiny_model_dir, f"/dev/fd/{read_end}", "--format", "json"), pass_fds=(read_end,))
    finally:
        os.close(read_end)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["documents"]) == 2


def test_a_directory_is_refused_with_one_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    _assert_exit_2_one_line(_crossrank(*_rerank(tiny_model_dir, str(tmp_path))), f"{tmp_path} is a directory")


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> object:
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_output_of_disabled_reranking_is_strict(tiny_model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text(DOCS, encoding="utf-8")
    done = _crossrank(*_rerank(tiny_model_dir, str(path), "--format", "json"), env={"CROSSRANK_DISABLED": "1"})
    assert done.returncode == 0, done.stderr
    output = _strict_json(done.stdout)
    assert [d["score"] for d in output["documents"]] == [None, None]  # type: ignore[index]
    assert [d["text"] for d in output["documents"]] == ["paris is the capital of france", "the cat and the dog"]  # type: ignore[index]


def test_malformed_feedback_log_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_text('{"event": "shown"}\n' + "[" * 100_000 + "\n" + "1" * 5000 + "\n", encoding="utf-8")
    _assert_exit_2_one_line(_crossrank("feedback", "export", str(path)), str(path), "no valid feedback record")


def test_corrupt_sqlite_feedback_log_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite"
    path.write_bytes(b"this is not an sqlite database" * 100)
    _assert_exit_2_one_line(_crossrank("feedback", "export", str(path)), str(path))


def test_malformed_feedback_lines_are_skipped_and_counted(tmp_path: Path, tiny_model_dir: Path) -> None:
    from crossrank import ScoredDocument

    log = FeedbackLog(tmp_path / "feedback.jsonl")
    impression = log.record_shown("capital", [ScoredDocument(0, "paris", 0.9, 2.0, rank=1)])
    with log.path.open("a", encoding="utf-8") as handle:
        handle.write('{"event": "shown"}\n{"event": "used"}\n' + "[" * 100_000 + "\n")
    log.record_used(impression, 0)
    done = _crossrank("feedback", "export", str(log.path))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["clicked"] == [rows[0]["shown"][0]]
    assert "skipped 3 corrupt records" in done.stderr
