"""LlamaIndex node postprocessor: rerank retrieved nodes with crossrank.

Needs ``pip install 'crossrank[llama-index]'`` (llama-index-core).
"""

from __future__ import annotations

from typing import Any

from crossrank.adapters._common import (
    SharedEngineMixin,
    RANK_KEY,
    RAW_SCORE_KEY,
    SCORE_KEY,
    AbstainCallback,
    arerank_texts,
    check_threshold,
    check_top_n,
    rerank_texts,
    retriever_scores,
    scored_metadata,
)

from crossrank.errors import InvalidInputError, missing_dependency
from crossrank.reranker import Reranker, Threshold
from crossrank.results import RerankResult

try:
    from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_validator
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
except ImportError:
    raise missing_dependency(
        "llama-index-core", "llama-index", "crossrank.adapters.llama_index"
    ) from None

__all__ = ["CrossRankRerank"]

# The public methods are overridden (to take per-call values), so they are traced explicitly,
# as LlamaIndex traces the postprocessors' abstract methods.
dispatcher = get_dispatcher(__name__)

_SCORE_KEYS = (SCORE_KEY, RAW_SCORE_KEY, RANK_KEY)


class CrossRankRerank(SharedEngineMixin, BaseNodePostprocessor):
    """Reranks LlamaIndex nodes with a crossrank cross-encoder and calibrated scores.

    Returns copies of the nodes, best first: ``node.score`` is the calibrated probability and
    the node's metadata gains ``crossrank_score``, ``crossrank_raw_score`` and ``crossrank_rank``
    (kept out of the LLM and embedding text). When ``threshold`` removes every node the result
    is empty, an INFO line is logged on ``crossrank.adapters`` and ``on_abstain(query, result)``
    is called.

    Args:
        model, backend, device, profile, max_length, long_documents, window_pooling, max_windows,
            batch_size, token_budget: Options of :class:`crossrank.Reranker`.
        reranker_options: Further :class:`crossrank.Reranker` options (JSON values).
        top_n: Keep at most this many nodes (after the threshold); None keeps all that pass.
        threshold: A probability in [0, 1], ``"calibrated"`` for the model's fitted rule, or None.
        metadata_mode: Which node text is scored (default: the content without metadata, as in
            the other crossrank adapters).
        reranker: An existing :class:`crossrank.Reranker` to share instead of building one.
        on_abstain: Called as ``on_abstain(query, result)`` when the threshold leaves nothing.

    Example:
        >>> from crossrank.adapters.llama_index import CrossRankRerank
        >>> rerank = CrossRankRerank(top_n=3, threshold=0.5)
        >>> engine = index.as_query_engine(node_postprocessors=[rerank])  # doctest: +SKIP
    """

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
    top_n: int | None = Field(default=None, description="Nodes to keep after the threshold.")
    threshold: float | str | None = Field(
        default=None, description="Probability, 'calibrated' or None."
    )
    metadata_mode: MetadataMode = Field(default=MetadataMode.NONE)

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

    @classmethod
    def class_name(cls) -> str:
        return "CrossRankRerank"

    # The public methods accept per-call overrides; None keeps the configured value.
    @dispatcher.span
    def postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
        query_str: str | None = None,
        *,
        top_n: int | None = None,
        threshold: Threshold = None,
    ) -> list[NodeWithScore]:
        """Rerank ``nodes`` for the query; ``top_n``/``threshold`` override the configuration."""
        query = _query_text(query_bundle, query_str)
        result = rerank_texts(
            self._reranker, query, self._texts(nodes), **self._call(top_n, threshold, nodes)
        )
        return _ranked_nodes(nodes, result)

    @dispatcher.span
    async def apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
        query_str: str | None = None,
        *,
        top_n: int | None = None,
        threshold: Threshold = None,
    ) -> list[NodeWithScore]:
        """Async :meth:`postprocess_nodes`: the model runs in a worker thread."""
        query = _query_text(query_bundle, query_str)
        result = await arerank_texts(
            self._reranker, query, self._texts(nodes), **self._call(top_n, threshold, nodes)
        )
        return _ranked_nodes(nodes, result)

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        return self.postprocess_nodes(nodes, query_bundle)

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        return await self.apostprocess_nodes(nodes, query_bundle)

    def _texts(self, nodes: list[NodeWithScore]) -> list[str]:
        return [item.node.get_content(metadata_mode=self.metadata_mode) for item in nodes]

    def _call(self, top_n: int | None, threshold: Threshold, nodes: list[NodeWithScore]) -> dict[str, Any]:
        return {
            "first_stage_scores": retriever_scores(self._reranker, [item.score for item in nodes], "NodeWithScore.score"),
            "top_n": top_n,
            "threshold": threshold,
            "default_top_n": self.top_n,
            "default_threshold": self.threshold,
            "on_abstain": self._on_abstain,
            "source": self.class_name(),
        }


def _query_text(query_bundle: QueryBundle | None, query_str: str | None) -> str:
    if query_bundle is not None and query_str is not None:
        raise InvalidInputError("pass either query_bundle or query_str, not both")
    if query_str is not None:
        return query_str
    if query_bundle is None:
        raise InvalidInputError("CrossRankRerank needs the query: pass query_bundle or query_str")
    return query_bundle.query_str


def _ranked_nodes(nodes: list[NodeWithScore], result: RerankResult) -> list[NodeWithScore]:
    ranked = []
    for scored in result:
        node = nodes[scored.index].node
        copy = node.model_copy(
            update={
                "metadata": scored_metadata(node.metadata, scored),
                # The scores describe the ranking, not the passage: keep them out of prompts.
                "excluded_llm_metadata_keys": _with_keys(node.excluded_llm_metadata_keys),
                "excluded_embed_metadata_keys": _with_keys(node.excluded_embed_metadata_keys),
            }
        )
        ranked.append(NodeWithScore(node=copy, score=float(scored.score)))
    return ranked


def _with_keys(keys: list[str]) -> list[str]:
    return [*keys, *(key for key in _SCORE_KEYS if key not in keys)]
