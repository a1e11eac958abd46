"""Synthetic relevance judgments in every format the trainer reads, shared by training and domain tests."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

TOPICS = ["paris", "france", "berlin", "germany", "river", "museum", "cat", "dog", "sun", "moon", "water", "fire", "earth", "protein", "cell", "gene"]
FILLER = ["the", "a", "of", "is", "in", "for", "on", "with"]


def synthetic_rows(seed: int = 0) -> list[dict[str, Any]]:
    """One row per topic: a query, two relevant documents (one strong, one weak), two others."""
    rng = random.Random(seed)
    rows = []
    for i, topic in enumerate(TOPICS):
        others = [t for t in TOPICS if t != topic]
        strong = f"the {topic} {topic} is {rng.choice(FILLER)} {rng.choice(others)}"
        weak = f"a {topic} in the {rng.choice(others)}"
        negatives = [f"the {a} is {rng.choice(FILLER)} {b}" for a, b in (rng.sample(others, 2), rng.sample(others, 2))]
        rows.append({"query": f"what is the {topic}", "strong": strong, "weak": weak, "negatives": negatives, "qid": f"q{i}"})
    return rows


def write_synthetic(folder: Path) -> dict[str, Path]:
    """The same synthetic judgments in every supported format; returns the paths by format name."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = synthetic_rows()
    paths: dict[str, Path] = {}
    paths["pairs"] = folder / "pairs.jsonl"
    paths["pairs"].write_text("".join(json.dumps({"query": r["query"], "positive": r["strong"], "negatives": r["negatives"]}) + "\n" for r in rows))
    paths["pairs-csv"] = folder / "pairs.csv"
    with paths["pairs-csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query", "positive", "negative_1", "negative_2"])
        for r in rows:
            writer.writerow([r["query"], r["strong"], *r["negatives"]])
    paths["graded"] = folder / "graded.csv"
    with paths["graded"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query", "document", "label"])
        for r in rows:
            writer.writerow([r["query"], r["strong"], 2])
            writer.writerow([r["query"], r["weak"], 1])
            writer.writerow([r["query"], r["negatives"][0], 0])
    paths["interactions"] = folder / "interactions.jsonl"
    paths["interactions"].write_text("".join(
        json.dumps({"query": r["query"], "shown": [r["negatives"][0], r["strong"], r["negatives"][1]], "clicked": [1]}) + "\n" for r in rows
    ))
    beir = folder / "beir"
    (beir / "qrels").mkdir(parents=True, exist_ok=True)
    corpus, qrels = [], ["query-id\tcorpus-id\tscore"]
    for r in rows:
        for kind, text in (("s", r["strong"]), ("w", r["weak"])):
            corpus.append({"_id": f"{r['qid']}{kind}", "title": "", "text": text})
        qrels += [f"{r['qid']}\t{r['qid']}s\t2", f"{r['qid']}\t{r['qid']}w\t1"]
        corpus += [{"_id": f"{r['qid']}n{j}", "title": "", "text": t} for j, t in enumerate(r["negatives"])]
    (beir / "corpus.jsonl").write_text("".join(json.dumps(c) + "\n" for c in corpus))
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": r["qid"], "text": r["query"]}) + "\n" for r in rows))
    (beir / "qrels" / "train.tsv").write_text("\n".join(qrels) + "\n")
    paths["beir"] = beir
    return paths
