"""The command line turns bad input into exit code 2 and a one-line message, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossrank.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert err.startswith("crossrank: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.fixture()
def docs_file(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text('"paris is the capital of france"\n{"text": "the cat and the dog", "id": 2}\n', encoding="utf-8")
    return path


def _rerank(model: Path, docs: Path, *extra: str) -> list[str]:
    return ["rerank", "--model", str(model), "--documents", str(docs), *extra]


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_blank_query(tiny_model_dir: Path, docs_file: Path, query: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(_rerank(tiny_model_dir, docs_file, "--query", query), capsys)
    _assert_one_line_error(code, err, "query must contain at least one non-whitespace character")


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (b'"fine"\n{"text": "ok"}\n{broken json\n', ("line 3", "expected a JSON string or object")),
        (b'"fine"\n42\n', ("line 2", "received int")),
        (b'{"text": null}\n', ("line 1", "object with a string 'text'", "received dict")),
        (b'["a", "list"]\n', ("line 1", "received list")),
        (b'"fine"\n"caf\xe9 latin-1"\n', ("line 2", "expected UTF-8 text", "b'\\xe9'")),
    ],
)
def test_malformed_documents_file_names_the_line(
    tiny_model_dir: Path, tmp_path: Path, content: bytes, fragments: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    code, _, err = _run(_rerank(tiny_model_dir, path, "--query", "capital"), capsys)
    _assert_one_line_error(code, err, str(path), *fragments)


def test_missing_documents_file(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.jsonl"
    code, _, err = _run(_rerank(tiny_model_dir, missing, "--query", "capital"), capsys)
    _assert_one_line_error(code, err, f"{missing} does not exist")


@pytest.mark.parametrize("top_k", ["0", "-3"])
def test_non_positive_top_k(tiny_model_dir: Path, docs_file: Path, top_k: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(_rerank(tiny_model_dir, docs_file, "--query", "capital", "--top-k", top_k), capsys)
    _assert_one_line_error(code, err, "top_k must be >= 1", f"received {top_k}")


@pytest.mark.parametrize("threshold", ["nan", "inf", "-0.5", "1.5", "high"])
def test_bad_threshold_is_an_argument_error(
    tiny_model_dir: Path, docs_file: Path, threshold: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(_rerank(tiny_model_dir, docs_file, "--query", "capital", "--threshold", threshold))
    assert info.value.code == 2
    assert "expected a probability" in capsys.readouterr().err


def test_unknown_model(tmp_path: Path, docs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(_rerank(tmp_path / "no" / "such" / "model", docs_file, "--query", "capital"), capsys)
    _assert_one_line_error(code, err, "cannot find model")


def test_bad_batch_size(tiny_model_dir: Path, docs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(_rerank(tiny_model_dir, docs_file, "--query", "capital", "--batch-size", "0"), capsys)
    _assert_one_line_error(code, err, "batch_size must be an int >= 1; received int 0")


def test_empty_documents_file_gives_an_empty_ranking(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    code, out, err = _run(_rerank(tiny_model_dir, empty, "--query", "capital", "--format", "json"), capsys)
    assert code == 0, err
    assert json.loads(out)["documents"] == []


def test_unusual_text_round_trips_through_json_output(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = ["巴黎是法国的首都。", "باريس هي عاصمة فرنسا", "control\x00\x07\x1b chars", "lone \ud800 surrogate", ""]
    path = tmp_path / "unusual.jsonl"
    path.write_text("\ufeff" + "\n".join(json.dumps(d) for d in docs) + "\n", encoding="utf-8")
    code, out, err = _run(_rerank(tiny_model_dir, path, "--query", "capital \u202e", "--format", "json"), capsys)
    assert code == 0, err
    ranked = json.loads(out)["documents"]
    assert sorted(d["index"] for d in ranked) == list(range(len(docs)))
    texts = {d["index"]: d["text"] for d in ranked}
    assert texts[0] == docs[0] and texts[2] == docs[2] and texts[3] == "lone \ufffd surrogate"
    assert all(0.0 <= d["score"] <= 1.0 for d in ranked)


@pytest.mark.parametrize("name", ["..", "."])
def test_model_names_cannot_escape_the_cache(name: str, isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["models", "remove", name], capsys)
    _assert_one_line_error(code, err, "is not a usable model name")


def test_bench_without_a_benchmark_shows_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["bench"], capsys)
    assert code == 2 and "memory" in err and "async" in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["bench", "memory", "--tokens", "0", "--no-write"], "--tokens must be >= 1; received 0"),
        (["bench", "async", "--coroutines", "0", "--no-write"], "--coroutines must be >= 1; received 0"),
        (["bench", "async", "--tick-ms", "-1", "--no-write"], "--tick-ms must be > 0; received -1.0"),
    ],
)
def test_bench_bad_options(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(argv, capsys)
    _assert_one_line_error(code, err, fragment)


def test_bench_bad_counts_is_an_argument_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "memory", "--counts", "10,abc"])
    assert info.value.code == 2
    assert "expected comma-separated document counts" in capsys.readouterr().err
