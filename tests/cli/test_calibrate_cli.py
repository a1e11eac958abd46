"""``crossrank calibrate`` end to end on the tiny real model: pairs files, feedback logs, BEIR folders,
the per-domain slot, and the refusal of too little data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from crossrank import Reranker, ScoredDocument
from crossrank.calibration import load_calibration
from crossrank.cli import main
from crossrank.drift import REFERENCE_KEY
from crossrank.errors import InvalidInputError
from crossrank.evaluation.fitting import MIN_POSITIVES, MIN_QUERIES
from crossrank.feedback import FeedbackLog

pytestmark = pytest.mark.slow


def _topics(count: int) -> list[str]:
    words = ["volcano", "penguin", "violin", "bread", "comet", "coral", "glacier", "falcon", "cactus", "harbor",
             "lantern", "meadow", "orchid", "pyramid", "quartz", "rocket", "saddle", "tulip", "walrus", "zephyr"]
    return [f"{words[i % len(words)]} {words[(i * 7 + 3) % len(words)]} number{i}" for i in range(count)]


def _pairs(queries: int, *, no_answer_every: int = 5, positive_label: float = 2) -> list[dict[str, object]]:
    """Four texts per query: one on topic (relevant, except every ``no_answer_every``-th query) and three off topic."""
    topics = _topics(queries + 3)
    rows: list[dict[str, object]] = []
    for i in range(queries):
        topic = topics[i]
        rows.append({"query_id": f"q{i}", "query": f"tell me about {topic}", "text": f"A note on {topic} and more {topic}.",
                     "label": 0 if i % no_answer_every == 0 else positive_label})
        for j in range(1, 4):
            rows.append({"query_id": f"q{i}", "query": f"tell me about {topic}", "text": f"Something about {topics[i + j]}.",
                         "label": 0})
    return rows


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_pairs_file_round_trip_beside_the_model(tiny_model_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = _write_jsonl(tmp_path / "pairs.jsonl", _pairs(30))
    assert main(["calibrate", "--pairs", str(pairs), "--model", str(tiny_model_copy)]) == 0
    out = capsys.readouterr().out
    written = tiny_model_copy / "calibration.json"
    assert f"wrote {written}" in out
    assert "held-out ECE" in out and "95% bootstrap interval" in out
    calibration = load_calibration(written)
    provenance = calibration.provenance
    assert provenance["source"] == "pairs" and provenance["queries"] == 30
    assert provenance["counts"] == {"queries": 30, "pairs": 120, "positives": 24, "negatives": 96, "no_answer_queries": 6}
    held = provenance["fit_report"]["held_out"]
    assert held["queries"] == 9 and held["fitted_on_queries"] == 21
    low, high = held["ece_interval"]
    assert 0.0 <= low <= high <= 1.0
    # Both answerable and no-answer queries: an abstention rule and its threshold are fitted.
    assert calibration.abstention is not None and calibration.threshold is not None
    # The fitting queries' top scores are recorded for the drift monitor.
    assert provenance[REFERENCE_KEY]["queries"] == 30
    assert provenance["scorer"]["model"] == Reranker(str(tiny_model_copy)).model_id
    # The reranker of that folder picks the file up.
    assert Reranker(str(tiny_model_copy)).calibration.to_dict() == calibration.to_dict()


def test_graded_labels_follow_the_stated_rule(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _pairs(30, positive_label=2)
    for row in rows[1::8]:  # one off-topic text in every other query gets grade 1
        row["label"] = 1
    path = tmp_path / "pairs.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["query", "text", "label", "query_id"])
        writer.writeheader()
        writer.writerows(rows)
    counts = []
    for above in ("0", "1"):
        out = tmp_path / f"above-{above}.json"
        assert main(["calibrate", "--pairs", str(path), "--model", str(tiny_model_dir), "--relevant-above", above,
                     "--out", str(out)]) == 0
        counts.append(load_calibration(out).provenance["counts"]["positives"])
    # label > 0: grades 1 and 2 are relevant; label > 1: grade 2 only.
    assert counts == [24 + 15, 24]
    capsys.readouterr()


def test_too_little_data_is_refused_and_nothing_is_written(tiny_model_copy: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    few_queries = _write_jsonl(tmp_path / "few.jsonl", _pairs(10))
    assert main(["calibrate", "--pairs", str(few_queries), "--model", str(tiny_model_copy)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"10 labelled queries (need {MIN_QUERIES}: {MIN_QUERIES - 10} more)" in err
    assert f"8 relevant pairs (need {MIN_POSITIVES}: {MIN_POSITIVES - 8} more)" in err and "nothing was written" in err
    assert not (tiny_model_copy / "calibration.json").exists()
    # Enough queries, too few relevant pairs: every query but two has nothing relevant.
    sparse = _write_jsonl(tmp_path / "sparse.jsonl", _pairs(30, no_answer_every=1))
    rows = [json.loads(line) for line in sparse.read_text().splitlines()]
    rows[0]["label"] = rows[4]["label"] = 1
    _write_jsonl(sparse, rows)
    assert main(["calibrate", "--pairs", str(sparse), "--model", str(tiny_model_copy)]) == 2
    err = capsys.readouterr().err
    assert f"2 relevant pairs (need {MIN_POSITIVES}: {MIN_POSITIVES - 2} more)" in err and "30 labelled queries" not in err
    assert not (tiny_model_copy / "calibration.json").exists()
    # A malformed row names the file, the line and the field.
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"query": "q", "text": "t", "label": "very"}])
    assert main(["calibrate", "--pairs", str(bad), "--model", str(tiny_model_copy)]) == 2
    assert "bad.jsonl line 1: field 'label' must be a number or true/false; received 'very'" in capsys.readouterr().err


def _record_feedback(log: FeedbackLog, reranker: Reranker, queries: int) -> None:
    topics = _topics(queries + 3)
    for i in range(queries):
        texts = [f"A note on {topics[i]}.", *(f"Something about {topics[i + j]}." for j in range(1, 4))]
        result = reranker.rerank(f"tell me about {topics[i]}", texts)
        impression = log.record_shown(f"tell me about {topics[i]}", result, query_id=f"user-{i % 12}/q{i}")
        if i % 4:  # a quarter of the impressions: nothing was used
            on_topic = next(d for d in result if d.index == 0)
            log.record_used(impression, on_topic, kind="citation" if i % 2 else "click")


def test_feedback_log_round_trip(tiny_model_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reranker = Reranker(str(tiny_model_copy))
    log = FeedbackLog(tmp_path / "feedback.jsonl")
    _record_feedback(log, reranker, 40)
    # Impressions a fallback served carry another model's scores: left out, and said so.
    for i in range(3):
        shown = [ScoredDocument(index=0, text="a fallback answer", score=0.9, raw_score=5.0, rank=1)]
        log.record_used(log.record_shown(f"question {i}", shown, model="fallback-model@1"), 0)
    out = tmp_path / "from-feedback.json"
    assert main(["calibrate", "--feedback", str(log.path), "--model", str(tiny_model_copy), "--out", str(out)]) == 0
    assert "skipped 3 impressions scored by fallback-model@1" in capsys.readouterr().err
    calibration = load_calibration(out)
    counts = calibration.provenance["counts"]
    # used = relevant, shown and not used = not relevant, nothing used = a no-answer impression.
    assert counts == {"queries": 40, "pairs": 160, "positives": 30, "negatives": 130, "no_answer_queries": 10}
    assert calibration.provenance["source"] == "feedback" and calibration.abstention is not None
    # Only citations count as relevant: half of the uses.
    assert main(["calibrate", "--feedback", str(log.path), "--model", str(tiny_model_copy), "--use-kinds", "citation",
                 "--out", str(out)]) == 0
    assert load_calibration(out).provenance["counts"]["positives"] == 20
    capsys.readouterr()


def test_feedback_from_another_model_needs_rescoring(tiny_model_dir: Path, tiny_model_copy: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from crossrank.evaluation.labelled import from_feedback

    recorded_by = Reranker(str(tiny_model_dir))
    ids_only = FeedbackLog(tmp_path / "ids.sqlite")
    _record_feedback(ids_only, recorded_by, 30)
    impressions = ids_only.impressions()
    with pytest.raises(InvalidInputError, match="every impression was scored by another model .* but the model being calibrated is other@1"):
        from_feedback(impressions, model_id="other@1")
    # The recorded raw scores are the ones used, unchanged.
    data = from_feedback(impressions, model_id=recorded_by.model_id)
    first = impressions[0]
    assert sorted(data.logits[f"impression:{first.id}"].values()) == sorted(d["raw_score"] for d in first.documents)
    # Without stored text there is nothing to rescore.
    assert main(["calibrate", "--feedback", str(ids_only.path), "--model", str(tiny_model_copy), "--rescore", "--dry-run"]) == 2
    assert "has no stored text" in capsys.readouterr().err
    with_text = FeedbackLog(tmp_path / "text.jsonl", store_text=True)
    _record_feedback(with_text, recorded_by, 30)
    assert main(["calibrate", "--feedback", str(with_text.path), "--model", str(tiny_model_copy), "--rescore", "--dry-run"]) == 0
    assert "dry run: would write" in capsys.readouterr().out
    assert not (tiny_model_copy / "calibration.json").exists()


def test_domain_slot(isolated_home: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from crossrank.models.domains import domain_calibration_path, remove_domain

    pairs = _write_jsonl(tmp_path / "pairs.jsonl", _pairs(30))
    assert main(["calibrate", "--pairs", str(pairs), "--model", str(tiny_model_dir), "--domain", "legal"]) == 0
    slot = isolated_home / "domains" / "legal" / "calibration.json"
    assert domain_calibration_path("legal") == slot and slot.is_file()
    assert f"wrote {slot}" in capsys.readouterr().out
    assert not (tiny_model_dir / "calibration.json").exists()
    assert load_calibration(slot).provenance["source"] == "pairs"
    assert remove_domain("legal") is True and not slot.exists()
    assert remove_domain("legal") is False
    # Where to write must be said.
    assert main(["calibrate", "--pairs", str(pairs)]) == 2
    assert "say where to write the calibration" in capsys.readouterr().err


def _beir(folder: Path, queries: int) -> Path:
    (folder / "qrels").mkdir(parents=True)
    topics = _topics(queries)
    corpus = [{"_id": f"d{i}-{j}", "title": "", "text": f"A note {j} about {topic} and {topic}."}
              for i, topic in enumerate(topics) for j in range(2)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"about {t}"}) + "\n" for i, t in enumerate(topics)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}-0\t1\n" for i in range(queries)))
    return folder


def test_beir_folder(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bm25s")
    data = _beir(tmp_path / "beir", 30)
    out = tmp_path / "beir-calibration.json"
    common = ["--model", str(tiny_model_dir), "--max-length", "64", "--cache-dir", str(tmp_path / "cache"), "--depth", "4"]
    assert main(["calibrate", "--beir", str(data), *common, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # No query is marked as having no answer: said plainly, and no rule is written.
    assert "no abstention rule can be fitted without no-answer queries" in printed
    assert "pairs (each query's 10 best-scored documents)" in printed
    calibration = load_calibration(out)
    assert calibration.abstention is None and calibration.threshold is None
    assert calibration.provenance["counts"]["queries"] == 30 and calibration.provenance["source"] == "beir"
    assert calibration.provenance["counts"]["pairs"] == 120 and calibration.provenance["fit_top"] == 10
    assert main(["calibrate", "--beir", str(data), *common, "--sample", "12", "--out", str(out)]) == 2
    assert "--sample selects 12 queries (need 25: 13 more)" in capsys.readouterr().err
