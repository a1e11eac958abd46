"""One BM25 parameterization: the trainer's index and the evaluation's candidates rank and score
alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossrank.evaluation import candidates
from crossrank.evaluation.candidates import bm25_candidates
from crossrank.evaluation.datasets import load_dataset

pytest.importorskip("bm25s")

TEXTS = [
    "volcanoes erupt lava and ash over the valley",
    "a lava flow from the volcano reached the sea after the eruption",
    "penguins live on the antarctic ice and eat fish",
    "the orchestra played violin concertos all night long",
    "bread rises when yeast ferments the dough in a warm oven",
    "comets orbit the sun and a telescope can follow a comet for weeks",
    "coral reefs shelter fish; warm water bleaches coral",
    "eruption eruption eruption: the word repeated in a very short note",
    "a much longer note about volcanoes, which mentions lava once but talks at length about "
    "geology, plate tectonics, magma chambers, seismographs, monitoring stations and evacuation plans",
]
QUERIES = ["volcano lava eruption", "fish in warm water", "comet telescope orbit"]


def _dataset(folder: Path) -> Path:
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": t}) + "\n" for i, t in enumerate(QUERIES)))
    return folder


def test_parameters_live_in_one_place() -> None:
    assert (candidates.BM25_K1, candidates.BM25_B, candidates.BM25_STOPWORDS) == (0.9, 0.4, "en")


@pytest.mark.parametrize("stemmer", ["english", "none"])
def test_training_index_and_evaluation_candidates_agree(tmp_path: Path, stemmer: str) -> None:
    from crossrank.training.retrieval import Bm25Index

    data = load_dataset(_dataset(tmp_path / "beir"))
    query_ids = sorted(data.queries)
    depth = len(TEXTS)
    evaluation, eval_scores = bm25_candidates(data, query_ids, depth, stemmer=stemmer, with_scores=True)  # type: ignore[misc]
    index = Bm25Index({d: data.document(d) for d in data.corpus}, stemmer=stemmer)
    training = index.search([data.queries[q] for q in query_ids], depth)
    for query_id, hits in zip(query_ids, training):
        # The trainer drops documents that match no query term (score 0); the rest must agree.
        matched = [(d, s) for d, s in zip(evaluation[query_id], eval_scores[query_id]) if s > 0]
        assert [d for d, _ in hits] == [d for d, _ in matched]
        assert [s for _, s in hits] == pytest.approx([s for _, s in matched], rel=1e-6)
