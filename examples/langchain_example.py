"""Rerank a LangChain retriever's documents with crossrank.

Run: python examples/langchain_example.py   (needs: pip install 'crossrank[langchain]')

The vector store uses LangChain's DeterministicFakeEmbedding so that the example runs offline;
swap in your own embeddings. The reranker is the real default model.
"""

from __future__ import annotations

from crossrank.adapters.langchain import CrossRankCompressor
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore

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
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=32))
    store.add_documents(
        [Document(page_content=text, metadata={"source": name}) for name, text in PASSAGES.items()]
    )
    retriever = ContextualCompressionRetriever(
        base_compressor=CrossRankCompressor(top_n=2, threshold=0.5, on_abstain=report_abstention),
        base_retriever=store.as_retriever(search_kwargs={"k": len(PASSAGES)}),
    )

    for question in ("Which mountain is the second highest?", "Who wrote the novel Don Quixote?"):
        print(f"Q: {question}")
        documents = retriever.invoke(question)
        if not documents:
            print("  -> answer 'not found' instead of letting the LLM guess")
        for document in documents:
            meta = document.metadata
            print(
                f"  {meta['crossrank_rank']}. [{meta['source']}] score={meta['crossrank_score']:.3f}"
            )


if __name__ == "__main__":
    main()
