"""The serving chain: bounded abandoned work, native panics, reconfiguration under load."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossrank import BackendSpec, CrossRankError, ModelConfig, Reranker, hookimpl
from crossrank.config import RerankerConfig
from crossrank.plugins import new_plugin_manager

QUERY = "capital of france"
DOCS = ["paris is the capital of france", "the cat and the dog", "water"]


class Panic(BaseException):
    """Stands in for pyo3's PanicException: a BaseException, not an Exception."""


class _Behaviour:
    gate = threading.Event()
    mode = "hang"


class TroubledBackend:
    """Hangs until released (mode "hang") or panics (mode "panic")."""

    name = "troubled"
    batch_invariant = True
    running = 0
    lock = threading.Lock()

    def __init__(self, model_dir: Path, config: ModelConfig, device: str, options: dict[str, Any]) -> None:
        pass

    def score(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        if _Behaviour.mode == "panic":
            raise Panic("regex automaton overflowed")
        with TroubledBackend.lock:
            TroubledBackend.running += 1
        try:
            _Behaviour.gate.wait(60)
        finally:
            with TroubledBackend.lock:
                TroubledBackend.running -= 1
        return attention_mask.sum(axis=1).astype(np.float32)

    def close(self) -> None:
        pass


class TroubledPlugin:
    @hookimpl
    def crossrank_backends(self) -> list[BackendSpec]:
        return [BackendSpec(name="troubled", factory=TroubledBackend)]


def judge(query: str, texts: list[str]) -> list[float]:
    return [0.5] * len(texts)


def _manager():
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(TroubledPlugin(), name="troubled-plugin")
    return manager


def test_abandoned_primary_calls_are_bounded(overlap_model_dir: Path) -> None:
    _Behaviour.mode, _Behaviour.gate = "hang", threading.Event()
    config = RerankerConfig(
        model=str(overlap_model_dir), backend="troubled", fallback=judge, primary_timeout=0.05, max_abandoned_calls=2
    )
    reranker = Reranker.from_config(config, plugin_manager=_manager()).warm_up()
    try:
        reasons = [reranker.rerank(QUERY, DOCS).stats.fallback_reason for _ in range(20)]
        assert all(r.startswith(("timeout:", "skipped:")) for r in reasons)
        assert sum(r.startswith("timeout:") for r in reasons) == 2  # then the primary is skipped
        assert reranker._chain.abandoned_calls == 2
        assert TroubledBackend.running <= 2
        assert sum(t.name == "crossrank-primary" for t in threading.enumerate()) <= 2
    finally:
        _Behaviour.gate.set()
    # Once the abandoned calls finish, the primary is tried again and answers.
    for thread in [t for t in threading.enumerate() if t.name == "crossrank-primary"]:
        thread.join(30)
    assert reranker._chain.abandoned_calls == 0
    reranker.primary_timeout = 30.0
    assert reranker.rerank(QUERY, DOCS).served_by == "primary"


def test_a_native_panic_is_a_primary_failure(overlap_model_dir: Path) -> None:
    _Behaviour.mode = "panic"
    served = Reranker.from_config(
        RerankerConfig(model=str(overlap_model_dir), backend="troubled", fallback=judge), plugin_manager=_manager()
    ).rerank(QUERY, DOCS)
    assert served.served_by == "fallback" and "PrimaryFailedError" in served.stats.fallback_reason
    alone = Reranker.from_config(RerankerConfig(model=str(overlap_model_dir), backend="troubled"), plugin_manager=_manager())
    with pytest.raises(CrossRankError, match="Panic: regex automaton overflowed"):
        alone.rerank(QUERY, DOCS)


def test_reconfiguring_while_other_threads_rerank(overlap_model_dir: Path, overlap_plugin_manager) -> None:
    reranker = Reranker.from_config(RerankerConfig(model=str(overlap_model_dir), backend="overlap"), plugin_manager=overlap_plugin_manager)
    errors: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        try:
            while not stop.is_set():
                result = reranker.rerank(QUERY, DOCS)
                assert len(result) in (1, 2, 3)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for step in range(30):
        reranker.reconfigure(top_k=1 + step % 3, max_length=32 + step % 2 * 16)
        if step % 10 == 0:
            reranker.close()
    stop.set()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert reranker.config.max_length in (32, 48)


def test_close_while_onnx_calls_are_in_flight(tiny_model_dir: Path) -> None:
    reranker = Reranker.from_config(RerankerConfig(model=str(tiny_model_dir), backend="onnx"))
    expected = [d.raw_score for d in reranker.rerank(QUERY, DOCS * 20)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        try:
            while not stop.is_set():
                assert [d.raw_score for d in reranker.rerank(QUERY, DOCS * 20)] == expected
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(20):
        reranker.close()
        threading.Event().wait(0.01)
    stop.set()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:1]


def test_reconfiguring_keeps_what_the_change_does_not_touch(overlap_model_dir: Path, overlap_plugin_manager) -> None:
    reranker = Reranker.from_config(
        RerankerConfig(model=str(overlap_model_dir), backend="overlap", cache="memory", fallback=judge),
        plugin_manager=overlap_plugin_manager,
    )
    reranker.rerank(QUERY, DOCS)
    cache, chain, fallback = reranker.cache, reranker._chain, reranker.fallback
    reranker.reconfigure(threshold=0.5, top_k=1, min_confidence=0.1)
    assert reranker.cache is cache and reranker._chain is chain and reranker.fallback is fallback
    assert reranker.rerank(QUERY, DOCS).stats.cache_hits == len(DOCS)
    assert chain.min_confidence == 0.1
    reranker.reconfigure(cache=None)
    assert reranker.cache is None and reranker.rerank(QUERY, DOCS).stats.cache_hits == 0
