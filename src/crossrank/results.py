"""The result types every reranking call returns."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, overload

__all__ = ["ScoredDocument", "RerankStats", "RerankResult", "BatchShape"]


@dataclass(frozen=True)
class ScoredDocument:
    """One input document with its scores.

    Attributes:
        index: Position of the document in the input list.
        text: The document text as given.
        score: Calibrated probability of relevance, in [0, 1].
        raw_score: The model's raw logit (after long-document pooling).
        metadata: A copy of the document's metadata.
        rank: 1-based position in the ranked output.
    """

    index: int
    text: str
    score: float
    raw_score: float
    metadata: Mapping[str, Any] = field(default_factory=dict)
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "rank": self.rank,
            "score": self.score,
            "raw_score": self.raw_score,
            "text": self.text,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class BatchShape:
    """Rows and padded sequence length of one model call."""

    rows: int
    length: int


@dataclass
class RerankStats:
    """What happened during one call: counts, shapes and timings.

    Attributes:
        documents: Documents received.
        pairs_scored: Query/passage pairs sent to the model (windows count separately).
        truncated_documents: Documents cut at ``max_length`` (window mode off).
        windowed_documents: Documents split into several windows.
        windows: Total windows scored for windowed documents.
        truncated_queries: Queries cut at ``max_query_length``.
        partially_scanned_documents: Documents longer than sentence selection scans
            (``max_windows * max_length`` tokens); only their first part was considered. Each
            is also counted in ``truncated_documents``.
        batches: Shape of each model call.
        dropped_by_threshold: Documents removed because their score was below the threshold.
        abstained: True when a threshold removed every document.
        backend: Name of the backend that scored.
        model: Model identifier.
        served_by: Which path produced the result: ``"primary"``, ``"fallback"`` or
            ``"disabled"`` (reranking switched off, documents passed through in input order).
        fallback_reason: Why the fallback served (``"error: ..."``, ``"timeout: ..."``,
            ``"unsure: ..."``); empty when it did not.
        cache_hits: Documents whose score came from the score cache instead of the model.
        best_score: Highest calibrated score before threshold and ``top_k`` (None when nothing
            was scored).
        first_stage_weight: The weight the retriever's scores were fused into the order with
            (0: the reranker ordered alone; ``first_stage_weight="auto"`` fuses with 0.3 when
            every candidate carried a retriever score).
        score_drift: The population stability index between the top scores of the last
            queries and those the calibration was fitted on (see :mod:`crossrank.drift`);
            above 0.2 the calibration may be off for these queries. None until the window is
            full, or when the calibration records no reference.
        tokenize_ms / model_ms / post_ms: Wall time split.
        total_ms: Wall time of the whole call, fallback included.
    """

    documents: int = 0
    pairs_scored: int = 0
    truncated_documents: int = 0
    windowed_documents: int = 0
    windows: int = 0
    truncated_queries: int = 0
    partially_scanned_documents: int = 0
    batches: list[BatchShape] = field(default_factory=list)
    dropped_by_threshold: int = 0
    abstained: bool = False
    backend: str = ""
    model: str = ""
    served_by: str = "primary"
    fallback_reason: str = ""
    cache_hits: int = 0
    best_score: float | None = None
    first_stage_weight: float = 0.0
    score_drift: float | None = None
    tokenize_ms: float = 0.0
    model_ms: float = 0.0
    post_ms: float = 0.0
    total_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RerankResult(Sequence[ScoredDocument]):
    """Ranked documents (best first), plus whether the call abstained and its stats.

    Best first means by calibrated score, or by the fused score when the reranker fuses the
    retriever's scores (``result.stats.first_stage_weight`` above 0); ``rank`` follows that order.

    A ``RerankResult`` behaves as a read-only list of :class:`ScoredDocument`.

    Example:
        >>> from crossrank import RerankResult, RerankStats, ScoredDocument
        >>> result = RerankResult([ScoredDocument(0, "a", 0.9, 2.2, rank=1)], stats=RerankStats())
        >>> result[0].score, result.abstained
        (0.9, False)
    """

    __slots__ = ("_documents", "query", "threshold", "stats")

    def __init__(
        self,
        documents: Sequence[ScoredDocument],
        *,
        query: str = "",
        threshold: float | None = None,
        stats: RerankStats | None = None,
    ) -> None:
        self._documents = tuple(documents)
        self.query = query
        self.threshold = threshold
        self.stats = stats if stats is not None else RerankStats()

    @property
    def abstained(self) -> bool:
        """True when a threshold removed every candidate: "nothing here is relevant"."""
        return self.stats.abstained

    @property
    def served_by(self) -> str:
        return self.stats.served_by

    @overload
    def __getitem__(self, item: int) -> ScoredDocument: ...
    @overload
    def __getitem__(self, item: slice) -> tuple[ScoredDocument, ...]: ...
    def __getitem__(self, item: int | slice) -> ScoredDocument | tuple[ScoredDocument, ...]:
        return self._documents[item]

    def __len__(self) -> int:
        return len(self._documents)

    def __iter__(self) -> Iterator[ScoredDocument]:
        return iter(self._documents)

    def __repr__(self) -> str:
        return (
            f"RerankResult({len(self)} documents, abstained={self.abstained}, "
            f"threshold={self.threshold})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "threshold": self.threshold,
            "abstained": self.abstained,
            "documents": [d.to_dict() for d in self._documents],
            "stats": self.stats.to_dict(),
        }
