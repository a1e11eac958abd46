"""LangChain document compressor: rerank retrieved documents with crossrank.

Needs ``pip install 'crossrank[langchain]'`` (langchain-core; ``ContextualCompressionRetriever``
lives in ``langchain-classic`` since LangChain 1.0, which the extra also installs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crossrank.adapters._common import (
    SharedEngineMixin,
    AbstainCallback,
    arerank_texts,
    check_threshold,
    check_top_n,
    rerank_texts,
    retriever_scores,
    scored_metadata,
)

from crossrank.errors import missing_dependency
from crossrank.reranker import Reranker, Threshold
from crossrank.results import RerankResult

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import Document
    from langchain_core.documents.compressor import BaseDocumentCompressor
    from pydantic import ConfigDict, Field, PrivateAttr, field_validator
except ImportError:
    raise missing_dependency(
        "langchain-core", "langchain", "crossrank.adapters.langchain"
    ) from None

__all__ = ["RETRIEVER_SCORE_KEY", "CrossRankCompressor"]

RETRIEVER_SCORE_KEY = "score"
"""The metadata key read as the retriever's score for first-stage fusion."""


class CrossRankCompressor(SharedEngineMixin, BaseDocumentCompressor):
    """Reranks LangChain documents with a crossrank cross-encoder and calibrated scores.

    Returns copies of the documents, best first, whose metadata gains ``crossrank_score``
    (calibrated probability), ``crossrank_raw_score`` and ``crossrank_rank``. When
    ``threshold`` removes every document the result is empty, an INFO line is logged on
    ``crossrank.adapters`` and ``on_abstain(query, result)`` is called.

    Args:
        model, backend, device, profile, max_length, long_documents, window_pooling, max_windows,
            batch_size, token_budget: Options of :class:`crossrank.Reranker`.
        reranker_options: Further :class:`crossrank.Reranker` options (JSON values).
        top_n: Keep at most this many documents (after the threshold); None keeps all that pass.
        threshold: A probability in [0, 1], ``"calibrated"`` for the model's fitted rule, or None.
        reranker: An existing :class:`crossrank.Reranker` to share instead of building one.
        on_abstain: Called as ``on_abstain(query, result)`` when the threshold leaves nothing.

    Example:
        >>> from langchain_classic.retrievers import ContextualCompressionRetriever
        >>> from crossrank.adapters.langchain import CrossRankCompressor
        >>> retriever = ContextualCompressionRetriever(  # doctest: +SKIP
        ...     base_compressor=CrossRankCompressor(top_n=3, threshold=0.5),
        ...     base_retriever=vector_store.as_retriever(search_kwargs={"k": 20}),
        ... )
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    model: str | None = Field(default=None, description="Model folder, Hugging Face id or name (None: $CROSSRANK_MODEL, the config file, else the embedded default).")
    backend: str | None = None
    device: str | None = None
    profile: str | None = Field(default=None, description="Speed profile registered by 'crossrank distill --profile' (e.g. 'fast'); its model replaces model.")
    max_length: int | None = None
    long_documents: str | None = None
    window_pooling: str | None = None
    max_windows: int | None = None
    batch_size: int | None = None
    token_budget: int | None = None
    reranker_options: dict[str, Any] = Field(default_factory=dict)
    top_n: int | None = Field(default=None, description="Documents to keep after the threshold.")
    threshold: float | str | None = Field(
        default=None, description="Probability, 'calibrated' or None."
    )

    _reranker: Reranker = PrivateAttr()
    _on_abstain: AbstainCallback | None = PrivateAttr(default=None)

    @field_validator("threshold", mode="before")
    @classmethod
    def _valid_threshold(cls, value: Any) -> Any:
        return None if value is False else check_threshold(value, configuring=True)

    @field_validator("top_n", mode="before")
    @classmethod
    def _valid_top_n(cls, value: Any) -> Any:
        return check_top_n(value, configuring=True)

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
        *,
        top_n: int | None = None,
        threshold: Threshold = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` for ``query``; ``top_n``/``threshold`` override the configuration
        (None keeps the configured value; ``False`` or ``0`` switch the threshold off)."""
        documents = list(documents)
        texts = [document.page_content for document in documents]
        result = rerank_texts(self._reranker, query, texts, **self._call(top_n, threshold, documents))
        return _ranked_documents(documents, result)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
        *,
        top_n: int | None = None,
        threshold: Threshold = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`: the model runs in a worker thread."""
        documents = list(documents)
        texts = [document.page_content for document in documents]
        result = await arerank_texts(self._reranker, query, texts, **self._call(top_n, threshold, documents))
        return _ranked_documents(documents, result)

    def _call(self, top_n: int | None, threshold: Threshold, documents: list[Document]) -> dict[str, Any]:
        # LangChain documents have no score field; its how-to guide on retriever scores puts them
        # in metadata["score"], which is where they are read from.
        scores = [d.metadata.get(RETRIEVER_SCORE_KEY) for d in documents]
        return {
            "first_stage_scores": retriever_scores(self._reranker, scores, f"metadata[{RETRIEVER_SCORE_KEY!r}]"),
            "top_n": top_n,
            "threshold": threshold,
            "default_top_n": self.top_n,
            "default_threshold": self.threshold,
            "on_abstain": self._on_abstain,
            "source": type(self).__name__,
        }


def _ranked_documents(documents: list[Document], result: RerankResult) -> list[Document]:
    ranked = []
    for scored in result:
        document = documents[scored.index]
        ranked.append(
            document.model_copy(update={"metadata": scored_metadata(document.metadata, scored)})
        )
    return ranked
