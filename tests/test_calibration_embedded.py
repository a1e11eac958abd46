"""The embedded default ships a fitted calibration; calibrated scores do not depend on batch company."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crossrank.calibration import load_calibration, packaged_calibration

pytestmark = [pytest.mark.embedded, pytest.mark.slow]


def _scifact_pairs(scifact_dir, count: int = 4) -> list[tuple[str, str]]:
    queries = {}
    with (scifact_dir / "queries.jsonl").open() as handle:
        for line in handle:
            row = json.loads(line)
            queries[row["_id"]] = row["text"]
    wanted = {}
    with (scifact_dir / "qrels" / "test.tsv").open() as handle:
        next(handle)
        for line in handle:
            q, d, _ = line.split("\t")
            wanted.setdefault(d, q)
            if len(wanted) == count:
                break
    docs = {}
    with (scifact_dir / "corpus.jsonl").open() as handle:
        for line in handle:
            row = json.loads(line)
            if row["_id"] in wanted:
                docs[row["_id"]] = f"{row['title']} {row['text']}"
    return [(queries[q], docs[d]) for d, q in wanted.items()]


def test_packaged_calibration_is_loaded_and_applied(embedded_reranker, scifact_dir) -> None:
    from crossrank import Reranker

    path = packaged_calibration(embedded_reranker.model_config)
    assert path is not None, "the embedded default must ship a calibration"
    shipped = load_calibration(path)
    assert shipped.calibrator.kind in ("platt", "isotonic", "temperature")
    assert shipped.threshold is not None and shipped.abstention is not None
    assert "train" in shipped.provenance["fitted_on"]
    # It records the top scores of its domain's queries, so the drift warning watches the default model.
    from crossrank.drift import MIN_REFERENCE_QUERIES, REFERENCE_KEY

    assert shipped.provenance[REFERENCE_KEY]["queries"] >= MIN_REFERENCE_QUERIES
    assert embedded_reranker.loaded.drift is not None
    assert embedded_reranker.calibration.to_dict() == shipped.to_dict()
    assert Reranker().calibration.to_dict() == shipped.to_dict()

    pairs = _scifact_pairs(scifact_dir)
    logits = embedded_reranker.score(pairs, raw=True)
    probabilities = embedded_reranker.score(pairs)
    assert np.allclose(probabilities, shipped.calibrator.transform(logits), atol=1e-9)
    # The calibration changes the numbers: it is not a plain sigmoid.
    assert not np.allclose(probabilities, 1 / (1 + np.exp(-logits)), atol=1e-3)
    result = embedded_reranker.rerank(pairs[0][0], [pairs[0][1]], threshold="calibrated")
    assert result.threshold == shipped.threshold


def test_calibrated_scores_are_batch_invariant(embedded_reranker, scifact_dir) -> None:
    pairs = _scifact_pairs(scifact_dir)
    alone = np.array([embedded_reranker.score([pair])[0] for pair in pairs])
    # In company: padded next to a much longer passage and other queries, in another order.
    filler = (pairs[0][0], " ".join([pairs[1][1]] * 4))
    together = embedded_reranker.score([filler, *reversed(pairs), ("short query", "short passage")])[1:-1][::-1]
    assert np.max(np.abs(alone - together)) < 1e-4
