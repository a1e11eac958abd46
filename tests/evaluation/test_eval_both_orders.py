"""``crossrank eval`` reports the reranker's order alone and fused with the first stage, side by side;
``crossrank tune`` says plainly when no abstention rule can be fitted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossrank.calibration import Calibration
from crossrank.cli import main
from crossrank.evaluation.datasets import load_dataset
from crossrank.evaluation.runner import EvalSetup, ScoredSplit, evaluate_scores
from crossrank.fusion import AUTO_WEIGHT

pytest.importorskip("bm25s")
pytest.importorskip("ranx")


def _dataset(folder: Path, *, evidence: bool = True) -> Path:
    (folder / "qrels").mkdir(parents=True)
    topics = ["volcano lava eruption", "penguin antarctic ice", "violin orchestra music", "bread yeast oven",
              "comet orbit telescope", "coral reef fish"]
    corpus = [{"_id": f"d{t}-{j}", "title": "", "text": f"A note {j} about {topic} and more {topic}."}
              for t, topic in enumerate(topics) for j in range(3)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{t}", "text": f"what about {topic}"}) + "\n"
                                                  for t, topic in enumerate(topics)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{t}\td{t}-0\t1\n" for t in range(6)))
    if evidence:
        (folder / "qrels" / "test-evidence.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"q{t}\td{t}-0\t1\n" for t in range(0, 6, 2)))
    return folder


def test_both_orders_on_designed_scores(tmp_path: Path) -> None:
    data = load_dataset(_dataset(tmp_path / "beir"))
    # q0's relevant d0-0 is the model's second choice but the retriever's clear first;
    # q2's relevant d2-0 is the model's first and the retriever's last.
    candidates = {"q0": ["d0-0", "d0-1", "d0-2"], "q2": ["d2-1", "d2-2", "d2-0"]}
    logits = {"q0": {"d0-0": 1.9, "d0-1": 2.0, "d0-2": -3.0}, "q2": {"d2-1": 0.0, "d2-2": -1.0, "d2-0": 4.0}}
    first_stage = {"q0": {"d0-0": 11.0, "d0-1": 5.0, "d0-2": 4.0}, "q2": {"d2-1": 6.0, "d2-2": 5.5, "d2-0": 5.0}}
    reports = {}
    for weight in (0.0, "auto"):
        setup = EvalSetup(split="test", depth=3, first_stage_weight=weight, query_ids=["q0", "q2"])
        scored = ScoredSplit(data, setup, ["q0", "q2"], candidates, logits, {}, first_stage=first_stage)
        reports[weight] = evaluate_scores(scored, Calibration(), metrics=("ndcg@10", "hit@1"), significance_samples=200)
    for report in reports.values():
        orders = report["orders"]
        # The same two orders whatever the setup's weight: alone q0 misses its first place, fused both are right.
        assert orders["reranker"]["hit@1"] == 0.5
        assert orders["fused"]["first_stage_weight"] == AUTO_WEIGHT and orders["fused"]["metrics"]["hit@1"] == 1.0
        assert orders["significance"]["baseline"] == "reranker alone"
    # The headline follows the setup: weight 0 is the reranker alone, "auto" fuses because BM25 scores exist.
    assert reports[0.0]["metrics"]["hit@1"] == 0.5 and reports[0.0]["first_stage_weight_applied"] == 0.0
    assert reports["auto"]["metrics"]["hit@1"] == 1.0 and reports["auto"]["first_stage_weight_applied"] == AUTO_WEIGHT
    # Fixed candidate lists carry only their rank: "auto" does not fuse and there is no fused order.
    fixed = EvalSetup(split="test", candidates="fixed", depth=3, first_stage_weight="auto", query_ids=["q0", "q2"])
    scored = ScoredSplit(data, fixed, ["q0", "q2"], candidates, logits, {}, first_stage=first_stage)
    report = evaluate_scores(scored, Calibration(), metrics=("hit@1",), significance_samples=200)
    assert report["orders"]["fused"] is None and "no retriever scores" in report["orders"]["note"]
    assert report["metrics"]["hit@1"] == 0.5 and report["first_stage_weight_applied"] == 0.0


@pytest.mark.slow
def test_eval_cli_writes_both_orders(tiny_model_dir: Path, tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "beir")
    common = ["--model", str(tiny_model_dir), "--max-length", "64", "--cache-dir", str(tmp_path / "cache"), "--no-plots"]
    out = tmp_path / "eval.json"
    assert main(["eval", str(dataset), "--depth", "3", *common, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["setup"]["first_stage_weight"] == "auto" and report["first_stage_weight_applied"] == AUTO_WEIGHT
    assert report["metrics"] == {**report["orders"]["fused"]["metrics"], **{k: v for k, v in report["metrics"].items()
                                                                             if k in ("false_evidence_rate", "hit_rate", "ece")}}
    summary = out.with_suffix(".md").read_text()
    assert "| metric | first stage | reranker alone | fused (first-stage weight 0.3) |" in summary
    assert "ndcg@10 fused vs reranker alone:" in summary
    assert "first-stage weight 'auto', 0.3" in summary
    assert main(["eval", str(dataset), "--depth", "3", *common, "--first-stage-weight", "0", "--cached-only", "--out", str(out)]) == 0
    alone = json.loads(out.read_text())
    assert alone["metrics"]["ndcg@10"] == alone["orders"]["reranker"]["ndcg@10"]
    assert alone["orders"]["fused"]["metrics"] == report["orders"]["fused"]["metrics"]


@pytest.mark.slow
def test_tune_without_no_answer_queries_says_so(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("optuna")
    dataset = _dataset(tmp_path / "beir", evidence=False)
    best = tmp_path / "best.json"
    assert main(["tune", str(dataset), "--split", "test", "--depth", "3", "--model", str(tiny_model_dir), "--max-length", "64",
                 "--cache-dir", str(tmp_path / "cache"), "--trials", "2", "--calibrators", "platt", "--holdout", "0.5",
                 "--out", str(best)]) == 0
    out = capsys.readouterr().out
    assert "no abstention rule can be fitted without no-answer queries" in out
    assert "has no qrels/test-evidence.tsv or query_labels.test.tsv" in out
    assert "held-out hit_rate" not in out
    saved = json.loads(best.read_text())
    assert saved["abstention_rule"] is None and saved["held_out_value"] is None and saved["held_out_ece"] >= 0.0
    assert saved["calibration"]["abstention"] is None and saved["calibration"]["threshold"] is None
