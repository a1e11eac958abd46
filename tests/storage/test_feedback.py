"""Feedback capture to JSONL and SQLite, and export to the trainer's interaction-log format."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from crossrank import Document, InvalidInputError, InvalidInputTypeError, Reranker
from crossrank.cli import main
from crossrank.feedback import FeedbackLog, document_id, export_interactions

QUERY = "what is the capital of france"
DOCS = [
    Document("paris is the capital of france", metadata={"id": "doc-paris"}),
    Document("the cat and the dog", metadata={"doc_id": 17}),
    "berlin is a city in germany",
]


@pytest.fixture(scope="module")
def result(tiny_model_dir: Path):
    return Reranker(str(tiny_model_dir)).rerank(QUERY, DOCS)


@pytest.mark.parametrize("suffix", [".jsonl", ".sqlite"])
def test_shown_and_used_export_to_interactions(result, tmp_path: Path, suffix: str) -> None:
    log = FeedbackLog(tmp_path / f"feedback{suffix}")
    first = log.record_shown(QUERY, result, query_id="session-1/turn-1")
    by_index = {d.index: d for d in result}
    log.record_used(first, by_index[0], kind="click")
    log.record_used(first, "17", kind="citation")
    log.record_used(first, 2, kind="vote")  # by input index
    log.record_used(first, by_index[0], kind="click")  # a second click on the same document counts once
    second = log.record_shown("how many people live in berlin", result[:1])
    assert first != second

    impressions = log.impressions()
    assert [i.id for i in impressions] == [first, second]
    buffer = io.StringIO()
    assert export_interactions(log, buffer) == 2
    rows = [json.loads(line) for line in buffer.getvalue().splitlines()]
    hashed_berlin = document_id(by_index[2])
    assert hashed_berlin.startswith("sha256:")
    assert rows[0]["shown"] == [document_id(d) for d in result]
    assert set(rows[0]["shown"]) == {"doc-paris", "17", hashed_berlin}
    assert rows[0]["clicked"] == ["doc-paris", "17", hashed_berlin]
    assert rows[0]["query"] is None and rows[0]["query_id"] == "session-1/turn-1"
    assert rows[0]["scores"] == pytest.approx([d.score for d in result])
    assert rows[0]["model"] == result.stats.model and rows[0]["served_by"] == "primary"
    assert rows[1]["clicked"] == [] and rows[1]["query_id"].startswith("sha256:")

    only_citations = io.StringIO()
    assert export_interactions(log, only_citations, kinds=["citation"], only_used=True) == 1
    assert json.loads(only_citations.getvalue())["clicked"] == ["17"]


@pytest.mark.parametrize("suffix", [".jsonl", ".db"])
def test_no_text_is_stored_unless_asked(result, tmp_path: Path, suffix: str) -> None:
    private = FeedbackLog(tmp_path / f"private{suffix}")
    private.record_shown(QUERY, result)
    raw = private.path.read_bytes()
    # Ids the application gave are kept (and "doc-paris" is one); text and query are not.
    assert b"capital" not in raw and b"germany" not in raw and b"cat and the dog" not in raw
    with pytest.raises(InvalidInputError, match="store_text=False"):
        export_interactions(private, io.StringIO(), documents="text")

    verbose = FeedbackLog(tmp_path / f"verbose{suffix}", store_text=True)
    impression = verbose.record_shown(QUERY, result)
    verbose.record_used(impression, "doc-paris")
    buffer = io.StringIO()
    export_interactions(verbose, buffer, documents="text")
    row = json.loads(buffer.getvalue())
    assert row["query"] == QUERY
    assert row["shown"] == [d.text for d in result]
    assert row["clicked"] == ["paris is the capital of france"]


def test_fallback_and_disabled_results_are_recorded_with_their_path(tmp_path: Path) -> None:
    reranker = Reranker(str(tmp_path / "missing"), allow_download=False, fallback=lambda q, t: [0.5] * len(t))
    log = FeedbackLog(tmp_path / "feedback.sqlite")
    log.record_shown(QUERY, reranker.rerank(QUERY, DOCS))
    log.record_shown(QUERY, Reranker(str(tmp_path / "missing"), disabled=True).rerank(QUERY, DOCS))
    with sqlite3.connect(log.path) as connection:
        rows = connection.execute("SELECT served_by, model, documents FROM impressions ORDER BY rowid").fetchall()
    assert [r[0] for r in rows] == ["fallback", "disabled"]
    assert rows[0][1].endswith("<lambda>")
    assert [d["score"] for d in json.loads(rows[1][2])] == [None, None, None]  # NaN is not JSON


def test_bad_input_is_refused(result, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=".jsonl, .sqlite"):
        FeedbackLog(tmp_path / "feedback.csv")
    log = FeedbackLog(tmp_path / "feedback.jsonl")
    with pytest.raises(InvalidInputError, match="query"):
        log.record_shown("  ", result)
    with pytest.raises(InvalidInputTypeError, match="ScoredDocument"):
        log.record_shown(QUERY, ["plain text"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputTypeError, match="document must be"):
        log.record_used("abc", 1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="kind"):
        log.record_used("abc", "doc", kind="")
    with pytest.raises(InvalidInputError, match="not found"):
        log.impressions()


def test_cli_export(result, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = FeedbackLog(tmp_path / "feedback.jsonl")
    impression = log.record_shown(QUERY, result)
    log.record_used(impression, "doc-paris")
    log.record_shown(QUERY, result)
    output = tmp_path / "interactions.jsonl"
    assert main(["feedback", "export", str(log.path), "-o", str(output), "--only-used"]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["clicked"] == ["doc-paris"]
    assert "exported 1 interactions" in capsys.readouterr().err
    assert main(["feedback", "export", str(log.path)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["feedback", "export", str(tmp_path / "absent.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err


def test_text_export_loads_as_trainer_interactions(result, tmp_path: Path) -> None:
    data = pytest.importorskip("crossrank.training.data")
    log = FeedbackLog(tmp_path / "feedback.jsonl", store_text=True)
    impression = log.record_shown(QUERY, result)
    log.record_used(impression, "doc-paris", kind="citation")
    exported = tmp_path / "interactions.jsonl"
    assert main(["feedback", "export", str(log.path), "-o", str(exported), "--documents", "text"]) == 0
    loaded = data.load_data(data.DataSpec(format="interactions", path=str(exported)))
    assert list(loaded.queries.values()) == [QUERY]
    (qid,) = loaded.queries
    grades = {loaded.corpus[doc]: grade for doc, grade in loaded.qrels[qid].items()}
    assert grades == {
        "paris is the capital of france": 1.0,
        "the cat and the dog": 0.0,
        "berlin is a city in germany": 0.0,
    }
