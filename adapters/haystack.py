"""Haystack component: rerank documents with crossrank inside a Haystack pipeline.

Needs ``pip install 'crossrank[haystack]'`` (haystack-ai; tested with haystack-ai 3.4.0).
Haystack 3 loads only allow-listed modules from pipeline YAML: load pipelines that contain this
component with ``Pipeline.loads(text, allowed_modules=["crossrank.*"])``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crossrank.adapters._common import (
    AbstainCallback,
    adapter_reranker,
    arerank_texts,
    engine_options,
    rerank_texts,
    retriever_scores,
    scored_metadata,
)

from crossrank.config import RerankerConfig
from crossrank.errors import InvalidInputTypeError, describe, missing_dependency
from crossrank.reranker import Reranker, Threshold
from crossrank.results import RerankResult

try:
    from haystack import Document, component, default_from_dict, default_to_dict
    from haystack.utils import deserialize_callable, serialize_callable
except ImportError:
    raise missing_dependency("haystack-ai", "haystack", "crossrank.adapters.haystack") from None

__all__ = ["CrossRankRanker"]


@component
class CrossRankRanker:
    """Ranks Haystack documents for a query with a crossrank cross-encoder and calibrated scores.

    Outputs copies of the documents, best first: ``document.score`` is the calibrated
    probability and ``document.meta`` gains ``crossrank_score``, ``crossrank_raw_score`` and
    ``crossrank_rank``. When ``score_threshold`` removes every document the output is empty, an
    INFO line is logged on ``crossrank.adapters`` and ``on_abstain(query, result)`` is called.

    Args:
        model: Model folder, Hugging Face id or registered name (default: the embedded model).
        backend, device, profile, max_length, long_documents, window_pooling, max_windows,
            batch_size, token_budget: Options of :class:`crossrank.Reranker`.
        reranker_options: Further :class:`crossrank.Reranker` options (JSON values).
        top_k: Keep at most this many documents (after the threshold); None keeps all that pass.
        score_threshold: A probability in [0, 1], ``"calibrated"`` for the model's fitted rule,
            or None.
        reranker: An existing :class:`crossrank.Reranker` to share instead of building one.
        on_abstain: Called as ``on_abstain(query, result)`` when the threshold leaves nothing;
            saved by import path, so use a module-level function.

    Example:
        >>> from haystack import Pipeline
        >>> from crossrank.adapters.haystack import CrossRankRanker
        >>> pipeline = Pipeline()  # doctest: +SKIP
        >>> pipeline.add_component("retriever", InMemoryBM25Retriever(store, top_k=20))  # doctest: +SKIP
        >>> pipeline.add_component("ranker", CrossRankRanker(top_k=3, score_threshold=0.5))  # doctest: +SKIP
        >>> pipeline.connect("retriever.documents", "ranker.documents")  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        backend: str | None = None,
        device: str | None = None,
        profile: str | None = None,
        top_k: int | None = None,
        score_threshold: float | str | None = None,
        max_length: int | None = None,
        long_documents: str | None = None,
        window_pooling: str | None = None,
        max_windows: int | None = None,
        batch_size: int | None = None,
        token_budget: int | None = None,
        reranker_options: dict[str, Any] | None = None,
        reranker: Reranker | None = None,
        config: RerankerConfig | dict[str, Any] | None = None,
        on_abstain: AbstainCallback | None = None,
    ) -> None:
        engine = {
            "model": model,
            "backend": backend,
            "device": device,
            "profile": profile,
            "max_length": max_length,
            "long_documents": long_documents,
            "window_pooling": window_pooling,
            "max_windows": max_windows,
            "batch_size": batch_size,
            "token_budget": token_budget,
        }
        parameters = {
            **engine,
            "reranker_options": reranker_options,
            "config": config,
            "top_k": top_k,
            "score_threshold": score_threshold,
        }
        self._reranker = adapter_reranker(
            reranker, parameters, top_n_key="top_k", threshold_key="score_threshold"
        )
        # What to save: the options given (None: not given), or a shared engine's whole configuration.
        self._saved: tuple[dict[str, Any], dict[str, Any]] | None = (
            None if reranker is not None or config is not None else (engine, dict(reranker_options or {}))
        )
        self.top_k = top_k
        self.score_threshold = None if score_threshold is False else score_threshold
        self.on_abstain = on_abstain

    @property
    def reranker(self) -> Reranker:
        """The :class:`crossrank.Reranker` doing the work (shareable with other adapters)."""
        return self._reranker

    def warm_up(self) -> None:
        """Load the model (Haystack pipelines call this before the first run)."""
        self._reranker.warm_up()

    def to_dict(self) -> dict[str, Any]:
        options, extra = engine_options(self._reranker) if self._saved is None else self._saved
        return default_to_dict(
            self,
            **options,
            top_k=self.top_k,
            score_threshold=self.score_threshold,
            reranker_options=extra or None,
            on_abstain=serialize_callable(self.on_abstain) if self.on_abstain is not None else None,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CrossRankRanker:
        parameters = data.get("init_parameters", {})
        callback = parameters.get("on_abstain")
        if isinstance(callback, str):
            data = {
                **data,
                "init_parameters": {**parameters, "on_abstain": deserialize_callable(callback)},
            }
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | str | bool | None = None,
    ) -> dict[str, list[Document]]:
        """Rank ``documents`` for ``query``.

        Args:
            query: The question.
            documents: Documents with text ``content``; they are not modified.
            top_k: Overrides the configured ``top_k`` (None keeps it).
            score_threshold: Overrides the configured threshold (None keeps it; ``False`` or
                ``0`` switch it off).

        Returns:
            ``{"documents": [...]}``, best first.
        """
        texts = _texts(documents)
        result = rerank_texts(self._reranker, query, texts, **self._call(top_k, score_threshold, documents))
        return {"documents": _ranked_documents(documents, result)}

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | str | bool | None = None,
    ) -> dict[str, list[Document]]:
        """Async :meth:`run`: the model runs in a worker thread, the event loop keeps going."""
        texts = _texts(documents)
        result = await arerank_texts(
            self._reranker, query, texts, **self._call(top_k, score_threshold, documents)
        )
        return {"documents": _ranked_documents(documents, result)}

    def _call(self, top_k: int | None, score_threshold: Threshold, documents: list[Document]) -> dict[str, Any]:
        return {
            "first_stage_scores": retriever_scores(self._reranker, [d.score for d in documents], "Document.score"),
            "top_n": top_k,
            "threshold": score_threshold,
            "default_top_n": self.top_k,
            "default_threshold": self.score_threshold,
            "on_abstain": self.on_abstain,
            "source": type(self).__name__,
        }


def _texts(documents: list[Document]) -> list[str]:
    texts = []
    for position, document in enumerate(documents):
        if not isinstance(document, Document):
            raise InvalidInputTypeError(f"document {position} must be a haystack Document; received {describe(document)}")
        if document.content is None:
            raise InvalidInputTypeError(
                f"document {position} (id {document.id}) has no text: Document.content is None; "
                "rerank text documents only (for example, filter out documents without content first)"
            )
        texts.append(document.content)
    return texts


def _ranked_documents(documents: list[Document], result: RerankResult) -> list[Document]:
    return [
        replace(
            documents[scored.index],
            score=float(scored.score),
            meta=scored_metadata(documents[scored.index].meta, scored),
        )
        for scored in result
    ]
