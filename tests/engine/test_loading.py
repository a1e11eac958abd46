"""The load stage: what a loaded model says about itself, and one scorer identity for every cache."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from crossrank import Reranker
from crossrank.config import RerankerConfig
from crossrank.engine.loading import load_model


def test_a_model_without_calibration_says_its_scores_are_a_plain_sigmoid(
    overlap_model_dir: Path, overlap_plugin_manager, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="crossrank"):
        loaded = load_model(RerankerConfig(model=str(overlap_model_dir), backend="overlap"), overlap_plugin_manager)
    assert loaded.calibration.threshold is None
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("no fitted calibration" in m and "plain sigmoid" in m for m in messages)


def test_scorer_identity_changes_with_what_changes_a_logit_only(overlap_model_dir: Path, overlap_plugin_manager) -> None:
    def identity(**options: object) -> str:
        config = RerankerConfig(model=str(overlap_model_dir), backend="overlap", **options)
        return load_model(config, overlap_plugin_manager).scorer_id()

    base = identity()
    assert identity(batch_size=1, top_k=3, threshold=0.5) == base  # batching and decisions change no logit
    assert identity(max_length=32) != base
    assert identity(long_documents="truncate") != base
    assert identity(window_overlap=4) == base  # window settings matter in window mode only
    assert identity(long_documents="window", window_overlap=4) != identity(long_documents="window", window_overlap=8)


def test_the_same_identity_keys_runtime_and_evaluation_caches(overlap_model_dir: Path, overlap_plugin_manager) -> None:
    from crossrank.evaluation.cache import scorer_settings

    reranker = Reranker.from_config(RerankerConfig(model=str(overlap_model_dir), backend="overlap"), plugin_manager=overlap_plugin_manager)
    assert scorer_settings(reranker) == reranker.loaded.identity()


@pytest.mark.embedded
def test_stats_name_the_graph_that_really_scores(embedded_model_dir: Path) -> None:
    default = Reranker.from_config(RerankerConfig(model=str(embedded_model_dir)))
    stats = default.rerank("q", ["a document"]).stats
    assert default.quantization == "dynamic-int8"
    assert stats.model == default.model_id and stats.model.endswith("+per-tensor")
    per_token = Reranker.from_config(
        RerankerConfig(model=str(embedded_model_dir), backend_options={"activation_quantization": "per-token"})
    )
    assert per_token.rerank("q", ["a document"]).stats.model.endswith("int8-per-token-v1")


def test_a_domain_calibration_slot_is_used_for_that_domain(
    overlap_model_dir: Path, overlap_plugin_manager, isolated_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from crossrank.calibration import Calibration, PlattCalibrator, save_calibration
    from crossrank.models.domains import domain_calibration_path

    slot = domain_calibration_path("legal")
    slot.parent.mkdir(parents=True)
    save_calibration(Calibration(PlattCalibrator(0.0, 0.0), threshold=0.4, provenance={"scorer": {"model": "test/overlap@v1"}}), slot)
    legal = load_model(RerankerConfig(model=str(overlap_model_dir), backend="overlap", domain="legal"), overlap_plugin_manager)
    assert legal.calibration.threshold == 0.4
    plain = load_model(RerankerConfig(model=str(overlap_model_dir), backend="overlap"), overlap_plugin_manager)
    assert plain.calibration.threshold is None
    explicit = Calibration(PlattCalibrator(1.0, 0.0), threshold=0.9)
    chosen = load_model(RerankerConfig(model=str(overlap_model_dir), backend="overlap", domain="legal", calibration=explicit), overlap_plugin_manager)
    assert chosen.calibration.threshold == 0.9  # an explicit calibration comes first
    save_calibration(Calibration(PlattCalibrator(0.0, 0.0), provenance={"scorer": {"model": "other/model@v3"}}), slot)
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        load_model(RerankerConfig(model=str(overlap_model_dir), backend="overlap", domain="legal"), overlap_plugin_manager)
    assert any("other/model@v3" in r.getMessage() for r in caplog.records)
