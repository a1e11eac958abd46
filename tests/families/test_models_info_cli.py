"""``crossrank models info`` and ``crossrank models families``: what a model is and how it is scored."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from crossrank.cli import main


def test_info_shows_family_lengths_languages_and_calibration(
    family_model: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "qwen"
    shutil.copytree(family_model("qwen3"), folder)
    (folder / "README.md").write_text("---\nlanguage:\n- en\n- zh\n---\n# a reranker\n")
    assert main(["models", "info", str(folder), "--family", "qwen3-reranker", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "qwen3-reranker" and "logit('yes') - logit('no')" in info["scoring"]
    assert (info["max_length"], info["max_length_limit"]) == (512, 4096)
    assert info["languages"] == ["en", "zh"] and info["calibration"] == {"fitted": False}
    assert info["instruction"] == "Given a web search query, retrieve relevant passages that answer the query"

    from crossrank.calibration import Calibration, PlattCalibrator, save_calibration

    save_calibration(Calibration(calibrator=PlattCalibrator(1.5, -0.5), threshold=0.4), folder / "calibration.json")
    assert main(["models", "info", str(folder), "--family", "qwen3-reranker"]) == 0
    text = capsys.readouterr().out
    assert "family:       qwen3-reranker" in text and "languages:    en, zh" in text
    assert "calibration:  fitted (platt, threshold 0.4)" in text
    assert "max length:   512 tokens by default, at most 4096" in text


def test_info_says_why_a_language_model_needs_a_family(family_model: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "info", str(family_model("gemma"))]) == 2
    assert "pass family= one of" in capsys.readouterr().err


def test_info_of_a_sentence_transformers_folder(family_model: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "info", str(family_model("st")), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "sentence-transformers" and info["max_length"] == 32
    assert "CrossEncoder.predict" in info["scoring"] and info["languages"] == []


def test_families_lists_every_family_and_how_it_scores(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "families"]) == 0
    text = capsys.readouterr().out
    for name in ("classifier", "sentence-transformers", "qwen3-reranker", "bge-llm-reranker", "mxbai-rerank-v2"):
        assert f"{name}  (" in text
    assert "known models: Qwen/Qwen3-Reranker-0.6B" in text
