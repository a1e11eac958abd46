"""Rerank a LlamaIndex query engine's context with crossrank.

Run: python examples/llama_index_example.py   (needs: pip install 'crossrank[llama-index]')

The index uses LlamaIndex's MockEmbedding and the answer comes from MockLLM so that the example
runs offline; swap in your own embedding model and LLM. The reranker is the real default model.
"""

from __future__ import annotations

from crossrank.adapters.llama_index import CrossRankRerank
from llama_index.core import VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.schema import TextNode

from crossrank import RerankResult

PASSAGES = {
    "everest": "Mount Everest, at 8,849 metres above sea level, is the highest mountain on Earth.",
    "k2": "K2, on the border of Pakistan and China, is the second-highest mountain at 8,611 metres.",
    "trekking": "The trekking season at Everest base camp runs from March to May.",
    "reef": "The Great Barrier Reef is the largest coral reef system in the world.",
    "bees": "A honey bee queen can lay up to 2,000 eggs a day.",
}


def report_abstention(query: str, result: RerankResult) -> None:
    print(
        f"  nothing relevant for {query!r}: all {result.stats.documents} candidates were below the threshold"
    )


def main() -> None:
    nodes = [
        TextNode(text=text, id_=name, metadata={"source": name}) for name, text in PASSAGES.items()
    ]
    index = VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=8))
    # threshold: a calibrated probability; threshold="calibrated" uses the model's fitted cut-off.
    rerank = CrossRankRerank(top_n=2, threshold=0.5, on_abstain=report_abstention)
    engine = index.as_query_engine(
        llm=MockLLM(), similarity_top_k=len(nodes), node_postprocessors=[rerank]
    )

    for question in ("How high is Mount Everest?", "Who wrote the novel Don Quixote?"):
        print(f"Q: {question}")
        response = engine.query(question)
        if not response.source_nodes:
            print("  -> answer 'not found' instead of letting the LLM guess")
        for node in response.source_nodes:
            print(
                f"  {node.node.metadata['crossrank_rank']}. [{node.node.node_id}] score={node.score:.3f}"
            )


if __name__ == "__main__":
    main()
