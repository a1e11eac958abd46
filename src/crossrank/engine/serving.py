"""Serve stage: the chain around the primary reranker.

In order: a switched-off reranker passes documents through untouched; otherwise the primary
scores, within ``primary_timeout`` when one is set; a primary that fails (any exception, a
native panic included), runs past its deadline, or whose best probability is below
``min_confidence`` is replaced by the fallback for the queries concerned.

Work abandoned at a deadline is bounded: Python cannot stop a thread, so a primary call past
its deadline keeps running in a daemon thread and its answer is dropped. At most
``max_abandoned_calls`` such calls may still be running; while that many are, the primary is
skipped (the fallback serves at once, reason ``"skipped: ..."``) until one of them finishes,
like a circuit breaker. Threads and the memory they hold therefore stay bounded however long
a backend hangs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from crossrank.engine.decision import Policy
from crossrank.engine.requests import Request
from crossrank.errors import CrossRankError
from crossrank.fallback import PrimaryTimeoutError, ScoringFunction, callable_reference, rank_callable_scores
from crossrank.results import RerankResult, RerankStats, ScoredDocument

__all__ = ["PrimaryFailedError", "ServingChain", "pass_through"]

logger = logging.getLogger("crossrank")

Primary = Callable[[list[Request], Policy], list[RerankResult]]

_NOT_FAILURES = (KeyboardInterrupt, SystemExit, GeneratorExit)


class PrimaryFailedError(CrossRankError, RuntimeError):
    """The primary reranker failed with something that is not an ordinary exception (a native panic)."""


def pass_through(request: Request, top_k: int | None) -> RerankResult:
    """The documents untouched, in input order (``top_k`` still applies, scores are NaN)."""
    documents = [
        ScoredDocument(index=i, text=request.texts[i], score=math.nan, raw_score=math.nan, metadata=request.metadata[i], rank=i + 1)
        for i in range(len(request.texts))[:top_k]
    ]
    stats = RerankStats(documents=len(request.texts), served_by="disabled")
    return RerankResult(documents, query=request.query, threshold=None, stats=stats)


class ServingChain:
    """Runs the primary with its deadline, confidence check and fallback.

    Args:
        primary: Scores and ranks requests (the engine's primary path).
        name: The primary's model, for log lines.
        fallback: Another reranker (anything with ``score_many``), a callable
            ``(query, texts) -> probabilities``, or None.
        primary_timeout: Seconds the primary may take, or None.
        min_confidence: Best probability under which the fallback serves, or None.
        max_abandoned_calls: Most primary calls past their deadline that may still run.
    """

    def __init__(
        self,
        primary: Primary,
        *,
        name: str,
        fallback: Any = None,
        primary_timeout: float | None = None,
        min_confidence: float | None = None,
        max_abandoned_calls: int = 2,
    ) -> None:
        self.primary = primary
        self._abandoned = 0
        self._lock = threading.Lock()
        self.configure(
            name=name, fallback=fallback, primary_timeout=primary_timeout,
            min_confidence=min_confidence, max_abandoned_calls=max_abandoned_calls,
        )

    def configure(
        self,
        *,
        name: str,
        fallback: Any,
        primary_timeout: float | None,
        min_confidence: float | None,
        max_abandoned_calls: int,
    ) -> None:
        """Change the chain's settings; calls already past their deadline stay counted."""
        with self._lock:
            self.name = name
            self.fallback = fallback
            self.primary_timeout = primary_timeout
            self.min_confidence = min_confidence
            self.max_abandoned_calls = max_abandoned_calls

    @property
    def abandoned_calls(self) -> int:
        """Primary calls past their deadline that are still running."""
        with self._lock:
            return self._abandoned

    def serve(self, requests: list[Request], policy: Policy) -> list[RerankResult]:
        if self.fallback is None:
            return self._run_primary(requests, policy)
        try:
            results = self._run_primary(requests, policy)
        except PrimaryTimeoutError as exc:
            return self._after_failure(requests, policy, exc, f"timeout: {exc}")
        except _Skipped as exc:
            return self._after_failure(requests, policy, None, f"skipped: {exc}")
        except Exception as exc:  # any primary failure, a model that cannot load included
            return self._after_failure(requests, policy, exc, f"error: {type(exc).__name__}: {' '.join(str(exc).split())}")
        if self.min_confidence is not None:
            unsure = [
                i for i, result in enumerate(results)
                if result.stats.best_score is not None and result.stats.best_score < self.min_confidence
            ]
            if unsure:
                reasons = [
                    f"unsure: best score {results[i].stats.best_score:.4f} < min_confidence {self.min_confidence:g}"
                    for i in unsure
                ]
                served = self._serve_fallback([requests[i] for i in unsure], policy, reasons)
                for i, result in zip(unsure, served):
                    results[i] = result
        return results

    def _after_failure(
        self, requests: list[Request], policy: Policy, failure: BaseException | None, reason: str
    ) -> list[RerankResult]:
        logger.warning("primary reranker %s failed (%s); the fallback serves", self.name, reason)
        try:
            return self._serve_fallback(requests, policy, [reason] * len(requests))
        except Exception as exc:
            raise exc from failure

    def _run_primary(self, requests: list[Request], policy: Policy) -> list[RerankResult]:
        try:
            if self.primary_timeout is None:
                return self.primary(requests, policy)
            return self._with_deadline(lambda: self.primary(requests, policy), self.primary_timeout)
        except _NOT_FAILURES:
            raise
        except (Exception, _Skipped):
            raise
        except BaseException as exc:  # a native panic (e.g. pyo3's PanicException) is a primary failure
            raise PrimaryFailedError(f"the primary reranker {self.name} failed: {type(exc).__name__}: {exc}") from exc

    def _with_deadline(self, work: Callable[[], list[RerankResult]], timeout: float) -> list[RerankResult]:
        with self._lock:
            if self._abandoned >= self.max_abandoned_calls:
                raise _Skipped(
                    f"{self._abandoned} earlier primary calls are still running past their deadline "
                    f"(max_abandoned_calls={self.max_abandoned_calls})"
                )
        outcome: dict[str, Any] = {}
        state = {"abandoned": False}
        finished = threading.Event()

        def target() -> None:
            try:
                outcome["value"] = work()
            except BaseException as exc:  # handed over to the caller's thread below
                outcome["error"] = exc
            finally:
                with self._lock:
                    finished.set()
                    if state["abandoned"]:
                        self._abandoned -= 1
                        outcome.clear()  # nobody reads it: let its memory go now

        thread = threading.Thread(target=target, name="crossrank-primary", daemon=True)
        thread.start()
        if not finished.wait(timeout):
            with self._lock:
                if not finished.is_set():
                    state["abandoned"] = True
                    self._abandoned += 1
                    raise PrimaryTimeoutError(f"the primary reranker did not answer within {timeout:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]  # type: ignore[no-any-return]

    def _serve_fallback(self, requests: list[Request], policy: Policy, reasons: list[str]) -> list[RerankResult]:
        fallback = self.fallback
        if hasattr(fallback, "score_many"):
            scores = [None if r.first_stage is None else r.first_stage.tolist() for r in requests]
            served = fallback.score_many(
                [(r.query, r.documents) for r in requests],
                # None would mean "the fallback's own setting": pass False for "off".
                top_k=False if policy.top_k is None else policy.top_k,
                threshold=False if policy.threshold is None else policy.threshold,
                first_stage_scores=scores if any(v is not None for v in scores) else None,
            )
        else:
            served = [self._call(fallback, request, policy) for request in requests]
        out = []
        for result, reason in zip(served, reasons):
            stats = dataclasses.replace(
                result.stats, batches=list(result.stats.batches), served_by="fallback", fallback_reason=reason
            )
            out.append(RerankResult(list(result), query=result.query, threshold=result.threshold, stats=stats))
        return out

    @staticmethod
    def _call(function: ScoringFunction, request: Request, policy: Policy) -> RerankResult:
        cut = None if policy.threshold is None else float(policy.threshold)
        started = time.perf_counter()
        stats = RerankStats(documents=len(request.texts), backend="callable", model=callable_reference(function))
        result = rank_callable_scores(
            function, request.query, request.texts, request.metadata, top_k=policy.top_k, cut=cut, stats=stats
        )
        result.stats.model_ms = (time.perf_counter() - started) * 1000
        return result


class _Skipped(Exception):
    """The primary was not tried: too many of its earlier calls are still running past their deadline."""
