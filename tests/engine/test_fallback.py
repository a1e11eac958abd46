"""Fallback serving on real rerankers: a primary that fails, one that times out, one that is unsure."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from crossrank import BackendSpec, ConfigurationError, Document, InvalidInputError, PluginError, Reranker, hookimpl
from crossrank.backends.onnx_backend import OnnxBackend
from crossrank.plugins import new_plugin_manager

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "the cat and the dog", "berlin is a city in germany"]


class _Recorder:
    """A callable fallback that remembers what it was asked."""

    def __init__(self, scores: list[float] | None = None) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.scores = scores

    def __call__(self, query: str, texts: list[str]) -> list[float]:
        self.calls.append((query, list(texts)))
        if self.scores is not None:
            return self.scores
        return [1.0 / (1 + i) for i in range(len(texts))]


class _ExplodingBackend:
    name = "exploding"
    batch_invariant = True

    def __init__(self, **_: object) -> None:
        pass

    def score(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        raise RuntimeError("inference server is down")

    def close(self) -> None:
        pass


class _GatedBackend:
    """The real ONNX backend, except that each call waits until the test opens the gate."""

    name = "gated"
    batch_invariant = True
    gate = threading.Event()
    finished = threading.Event()

    def __init__(self, **kwargs: object) -> None:
        self._inner = OnnxBackend(**kwargs)  # type: ignore[arg-type]

    def score(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        _GatedBackend.gate.wait(timeout=60)
        logits = self._inner.score(input_ids, attention_mask, token_type_ids)
        _GatedBackend.finished.set()
        return logits

    def close(self) -> None:
        self._inner.close()


class _TestBackends:
    @hookimpl
    def crossrank_backends(self) -> list[BackendSpec]:
        return [
            BackendSpec(name="exploding", factory=_ExplodingBackend),
            BackendSpec(name="gated", factory=_GatedBackend, needs_file="onnx"),
        ]


@pytest.fixture()
def plugins():
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(_TestBackends(), name="test-backends")
    return manager


def test_primary_whose_model_cannot_load_is_served_by_a_reranker_fallback(tiny_model_dir: Path, tmp_path: Path) -> None:
    fallback = Reranker(str(tiny_model_dir))
    primary = Reranker(str(tmp_path / "no-such-model"), allow_download=False, fallback=fallback)
    documents = [Document(text, metadata={"id": f"d{i}"}) for i, text in enumerate(DOCS)]
    result = primary.rerank(QUERY, documents)
    assert result.served_by == "fallback"
    assert result.stats.fallback_reason.startswith("error: ModelNotFoundError")
    expected = fallback.rerank(QUERY, documents)
    assert [d.index for d in result] == [d.index for d in expected]
    assert [d.score for d in result] == pytest.approx([d.score for d in expected])
    assert {d.metadata["id"] for d in result} == {"d0", "d1", "d2"}
    assert result.stats.model == expected.stats.model
    assert not primary.is_loaded


def test_primary_backend_that_raises_is_served_by_a_callable(tiny_model_dir: Path, plugins) -> None:
    judge = _Recorder()
    reranker = Reranker(str(tiny_model_dir), backend="exploding", plugin_manager=plugins, fallback=judge)
    result = reranker.rerank(QUERY, DOCS, top_k=2)
    assert result.served_by == "fallback"
    assert "RuntimeError: inference server is down" in result.stats.fallback_reason
    assert judge.calls == [(QUERY, DOCS)]
    assert [d.index for d in result] == [0, 1]
    assert [d.score for d in result] == [1.0, 0.5]
    assert result.stats.backend == "callable"
    assert result.stats.model.endswith("_Recorder")


def test_primary_that_runs_past_its_deadline_does_not_block_the_caller(tiny_model_dir: Path, plugins) -> None:
    _GatedBackend.gate.clear()
    _GatedBackend.finished.clear()
    judge = _Recorder()
    reranker = Reranker(
        str(tiny_model_dir), backend="gated", plugin_manager=plugins, fallback=judge, primary_timeout=0.2
    )
    try:
        result = reranker.rerank(QUERY, DOCS)
        # The primary is still waiting at the gate: the call returned without waiting for it.
        assert not _GatedBackend.finished.is_set()
        assert result.served_by == "fallback"
        assert result.stats.fallback_reason.startswith("timeout:")
        assert len(judge.calls) == 1
    finally:
        _GatedBackend.gate.set()
    # Once the model answers in time, the primary serves again.
    assert _GatedBackend.finished.wait(timeout=60)
    reranker.primary_timeout = 60.0
    again = reranker.rerank(QUERY, DOCS)
    assert again.served_by == "primary"
    assert len(judge.calls) == 1


def test_unsure_primary_is_served_by_the_fallback_only_below_the_level(tiny_model_dir: Path) -> None:
    best = Reranker(str(tiny_model_dir)).rerank(QUERY, DOCS).stats.best_score
    assert best is not None
    judge = _Recorder()
    confident = Reranker(str(tiny_model_dir), fallback=judge, min_confidence=best - 1e-6).rerank(QUERY, DOCS)
    assert confident.served_by == "primary"
    assert judge.calls == []
    unsure = Reranker(str(tiny_model_dir), fallback=judge, min_confidence=min(1.0, best + 1e-6)).rerank(QUERY, DOCS)
    assert unsure.served_by == "fallback"
    assert unsure.stats.fallback_reason.startswith("unsure: best score")
    assert len(judge.calls) == 1


def test_only_unsure_queries_go_to_the_fallback(tiny_model_dir: Path) -> None:
    plain = Reranker(str(tiny_model_dir))
    other_query = "how many people live in berlin"
    bests = [r.stats.best_score for r in plain.score_many([(QUERY, DOCS), (other_query, DOCS)])]
    assert bests[0] != bests[1]
    level = (bests[0] + bests[1]) / 2
    judge = _Recorder()
    results = Reranker(str(tiny_model_dir), fallback=judge, min_confidence=level).score_many(
        [(QUERY, DOCS), (other_query, DOCS)]
    )
    served = [r.served_by for r in results]
    assert sorted(served) == ["fallback", "primary"]
    unsure_query = QUERY if bests[0] < level else other_query
    assert [call[0] for call in judge.calls] == [unsure_query]


def test_call_threshold_and_top_k_apply_to_the_fallback(tmp_path: Path) -> None:
    judge = _Recorder(scores=[0.2, 0.9, 0.6])
    reranker = Reranker(str(tmp_path / "missing"), allow_download=False, fallback=judge, threshold=0.5)
    result = reranker.rerank(QUERY, DOCS)
    assert [d.index for d in result] == [1, 2]
    assert result.stats.dropped_by_threshold == 1
    assert result.threshold == 0.5
    nothing = reranker.rerank(QUERY, DOCS, threshold=0.95)
    assert nothing.abstained and len(nothing) == 0


def test_generator_documents_reach_the_fallback(tmp_path: Path) -> None:
    judge = _Recorder()
    reranker = Reranker(str(tmp_path / "missing"), allow_download=False, fallback=judge)
    result = reranker.rerank(QUERY, (text for text in DOCS))
    assert judge.calls == [(QUERY, DOCS)]
    assert len(result) == 3


def test_a_failing_fallback_raises_with_the_primary_failure_as_cause(tmp_path: Path) -> None:
    reranker = Reranker(str(tmp_path / "missing"), allow_download=False, fallback=_Recorder(scores=[0.5]))
    with pytest.raises(PluginError, match="returned 1 scores for 3 documents") as caught:
        reranker.rerank(QUERY, DOCS)
    assert type(caught.value.__cause__).__name__ == "ModelNotFoundError"
    out_of_range = Reranker(str(tmp_path / "missing"), allow_download=False, fallback=_Recorder(scores=[2.0, 0, 0]))
    with pytest.raises(PluginError, match=r"probabilities in \[0, 1\]"):
        out_of_range.rerank(QUERY, DOCS)


def test_healthy_primary_never_calls_the_fallback(tiny_model_dir: Path) -> None:
    judge = _Recorder()
    result = Reranker(str(tiny_model_dir), fallback=judge, primary_timeout=60).rerank(QUERY, DOCS)
    assert result.served_by == "primary"
    assert result.stats.fallback_reason == ""
    assert judge.calls == []


def test_fallback_by_model_name_and_from_the_environment(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_name = Reranker(str(tmp_path / "missing"), allow_download=False, fallback=str(tiny_model_dir))
    assert isinstance(by_name.fallback, Reranker)
    assert by_name.rerank(QUERY, DOCS).served_by == "fallback"
    monkeypatch.setenv("CROSSRANK_FALLBACK", str(tiny_model_dir))
    from_env = Reranker(str(tmp_path / "missing"), allow_download=False)
    assert from_env.setting_sources["fallback"] == "environment (CROSSRANK_FALLBACK)"
    assert isinstance(from_env.fallback, Reranker)
    assert from_env.fallback.fallback is None  # the fallback does not inherit a fallback of its own
    assert from_env.rerank(QUERY, DOCS).served_by == "fallback"


def test_invalid_fallback_options_are_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="need fallback="):
        Reranker(str(tiny_model_dir), primary_timeout=1.0)
    with pytest.raises(ConfigurationError, match="need fallback="):
        Reranker(str(tiny_model_dir), min_confidence=0.5)
    with pytest.raises(ConfigurationError, match="fallback must be"):
        Reranker(str(tiny_model_dir), fallback=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="primary_timeout"):
        Reranker(str(tiny_model_dir), fallback=_Recorder(), primary_timeout=0)
    with pytest.raises(InvalidInputError, match="min_confidence"):
        Reranker(str(tiny_model_dir), fallback=_Recorder(), min_confidence=1.5)
    with pytest.raises(ConfigurationError, match="callable fallback"):
        Reranker(str(tiny_model_dir), fallback=_Recorder(), threshold="calibrated")
    with pytest.raises(InvalidInputError, match="callable fallback"):
        Reranker(str(tiny_model_dir), fallback=_Recorder()).rerank(QUERY, DOCS, threshold="calibrated")


def test_fallback_options_round_trip_through_to_dict(tiny_model_dir: Path, tmp_path: Path) -> None:
    chained = Reranker(
        str(tmp_path / "missing"),
        allow_download=False,
        fallback=Reranker(str(tiny_model_dir), top_k=2),
        primary_timeout=5.0,
        min_confidence=0.25,
    )
    data = chained.to_dict()
    assert data["fallback"]["reranker"]["top_k"] == 2
    rebuilt = Reranker.from_dict(data)
    assert rebuilt.to_dict() == data
    assert rebuilt.rerank(QUERY, DOCS).served_by == "fallback"

    judge = _Recorder()
    with_callable = Reranker(str(tmp_path / "missing"), allow_download=False, fallback=judge).to_dict()
    assert with_callable["fallback"] == {"callable": f"{__name__}:_Recorder"}
    with pytest.raises(ConfigurationError, match="pass it again"):
        Reranker.from_dict(with_callable)
    again = Reranker.from_dict(with_callable, fallback=judge)
    assert again.to_dict() == with_callable
    assert again.rerank(QUERY, DOCS).served_by == "fallback"
