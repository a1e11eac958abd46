"""A query with no visible character is refused like an empty one, in the library and on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossrank import InvalidInputError, Reranker
from crossrank.cli import main
from crossrank.documents import validate_query
from crossrank.feedback import FeedbackLog

INVISIBLE = [
    "\u200b",  # zero-width space
    "\ufeff",  # byte-order mark / zero-width no-break space
    "\u200b\u200c\u200d\u2060",  # zero-width (non-)joiners and word joiner
    " \u200b\t\ufeff\n",
    "\x00\x01\x1b",  # control characters
    "\u00a0\u3000\u2028",  # no-break, ideographic and line separators
    "\u202e\u2066",  # bidirectional controls
]


@pytest.mark.parametrize("query", INVISIBLE)
def test_invisible_query_is_refused(query: str) -> None:
    with pytest.raises(InvalidInputError, match="at least one visible character"):
        validate_query(query)


@pytest.mark.parametrize("query", ["a", "\u200bparis\u200b", "東京", "é", "x\x00", "🙂"])
def test_a_visible_character_is_enough(query: str) -> None:
    assert validate_query(query) == query


def test_reranker_and_feedback_refuse_an_invisible_query(tiny_model_dir: Path, tmp_path: Path) -> None:
    reranker = Reranker(str(tiny_model_dir))
    with pytest.raises(InvalidInputError, match="visible character"):
        reranker.rerank("\u200b\ufeff", ["a document"])
    result = reranker.rerank("capital", ["a document"])
    with pytest.raises(InvalidInputError, match="visible character"):
        FeedbackLog(tmp_path / "feedback.jsonl").record_shown("\u200b", result)


def test_cli_refuses_an_invisible_query(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text('"a document"\n', encoding="utf-8")
    code = main(["rerank", "--model", str(tiny_model_dir), "-d", str(docs), "-q", "\u200b\u200b"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "visible character" in err
