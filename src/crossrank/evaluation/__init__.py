"""Evaluation toolkit: BEIR-layout datasets, first-stage candidates, cached scoring, metrics,
significance tests, threshold selection and reports.

Optional dependencies (bm25s, ranx, matplotlib, optuna, sentence-transformers for dense
candidates) are imported only where used; install them with ``pip install 'crossrank[eval]'``.

Example:
    >>> from crossrank import Reranker
    >>> from crossrank.evaluation import EvalSetup, evaluate_scores, prepare
    >>> scored = prepare("../shared/data/scifact", EvalSetup(split="test", depth=100), Reranker())  # doctest: +SKIP
    >>> evaluate_scores(scored, Reranker().calibration)["metrics"]["ndcg@10"]  # doctest: +SKIP
"""

from __future__ import annotations

from crossrank.evaluation.cache import EvalScoreCache, default_cache_dir, pair_key, scorer_settings
from crossrank.evaluation.candidates import (
    bm25_candidates,
    dense_candidates,
    get_candidates,
    get_scored_candidates,
    reciprocal_rank_fusion,
)
from crossrank.evaluation.datasets import BeirDataset, load_dataset
from crossrank.evaluation.metrics import (
    expected_calibration_error,
    false_evidence_rate,
    hit_rate,
    per_query_metric,
    ranking_metrics,
    reliability_bins,
    separation_auc,
)
from crossrank.evaluation.runner import (
    EvalSetup,
    ScoredSplit,
    decide,
    evaluate_scores,
    fit_calibration,
    prepare,
    select_first_stage_weight,
)
from crossrank.evaluation.significance import paired_bootstrap, randomization_test
from crossrank.evaluation.thresholds import (
    ThresholdChoice,
    gap_cutoff,
    precision_threshold,
    relative_cutoff,
    select_threshold,
)

__all__ = [
    "BeirDataset",
    "EvalScoreCache",
    "EvalSetup",
    "ScoredSplit",
    "ThresholdChoice",
    "bm25_candidates",
    "decide",
    "default_cache_dir",
    "dense_candidates",
    "evaluate_scores",
    "expected_calibration_error",
    "false_evidence_rate",
    "fit_calibration",
    "gap_cutoff",
    "get_candidates",
    "get_scored_candidates",
    "hit_rate",
    "load_dataset",
    "pair_key",
    "paired_bootstrap",
    "per_query_metric",
    "precision_threshold",
    "prepare",
    "randomization_test",
    "ranking_metrics",
    "reciprocal_rank_fusion",
    "relative_cutoff",
    "reliability_bins",
    "scorer_settings",
    "select_first_stage_weight",
    "select_threshold",
    "separation_auc",
]
