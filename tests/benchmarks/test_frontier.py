"""crossrank bench frontier: quality and cost per max_length, written as one BENCHMARKS.md section."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crossrank.benchmarks.frontier import run_frontier


def _dataset(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    topics = ["volcano lava eruption", "penguin antarctic ice", "violin orchestra music", "bread yeast oven"]
    corpus = [{"_id": f"d{t}-{j}", "title": "", "text": f"A note {j} about {topic}. " * (j + 1)} for t, topic in enumerate(topics) for j in range(3)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{t}", "text": f"what about {topic}"}) + "\n" for t, topic in enumerate(topics)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{t}\td{t}-0\t1\n" for t in range(len(topics))))
    return folder


def test_frontier_writes_every_length_and_the_choice(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = _dataset(tmp_path / "beir")
    output = tmp_path / "BENCHMARKS.md"
    args = argparse.Namespace(data=str(data), depth=3, lengths=[16, 32], cache_dir=str(tmp_path / "cache"),
                              model=str(tiny_model_dir), output=str(output), section="frontier-test")
    assert run_frontier(args) == 0
    first = output.read_text()
    rows = [line for line in first.splitlines() if line.startswith("| beir |")]
    assert [row.split("|")[2].strip() for row in rows] == ["16", "32"]
    assert sum("best" in row for row in rows) == 1
    assert "Shortest max_length not significantly below the best on every data set:" in first
    assert all(row.split("|")[7].strip() == "12" for row in rows)  # 4 queries x 3 candidates
    assert all(row.split("|")[6].strip() == "too few to time" for row in rows)
    # Scores come from the cache the second time: no cost is claimed for them.
    assert run_frontier(args) == 0
    assert all(row.split("|")[6].strip() == "cached" for row in output.read_text().splitlines() if row.startswith("| beir |"))
