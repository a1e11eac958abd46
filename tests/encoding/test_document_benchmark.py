"""The huge-document benchmark measures each mode in fresh processes and writes its section."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from crossrank import InvalidInputError
from crossrank.benchmarks.documents import register, run_document_benchmark, synthetic_document


def test_synthetic_document_has_the_requested_size_and_sentences() -> None:
    text = synthetic_document(50_000)
    assert len(text) == 50_000 and text == synthetic_document(50_000)
    assert text.count(". ") > 100


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="repeats"):
        run_document_benchmark(repeats=0)
    with pytest.raises(InvalidInputError, match="modes"):
        run_document_benchmark(modes=["whole"])


@pytest.mark.slow
def test_benchmark_writes_one_row_per_mode_with_counts(tiny_model_dir: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="bench_command"))
    output = tmp_path / "BENCHMARKS.md"
    args = parser.parse_args(
        ["documents", "--sizes", "200000", "--repeats", "1", "--tokenizer", str(tiny_model_dir / "tokenizer.json"),
         "--max-length", "64", "--output", str(output)]
    )
    assert args.handler(args) == 0
    text = output.read_text(encoding="utf-8")
    assert "<!-- section:huge-documents -->" in text and "- Machine:" in text
    rows = [line for line in text.splitlines() if line.startswith(("| truncate", "| window", "| select"))]
    assert [row.split("|")[1].strip() for row in rows] == ["truncate", "window", "select"]
    # Every mode cut the document and said so; selection also reports its cut scan.
    assert [row.split("|")[-2].strip() for row in rows] == ["1 / 0", "1 / 0", "1 / 1"]
