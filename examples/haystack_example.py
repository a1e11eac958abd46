"""Rerank BM25 results in a Haystack pipeline with crossrank, then save and reload the pipeline.

Run: python examples/haystack_example.py   (needs: pip install 'crossrank[haystack]')
"""

from __future__ import annotations

from crossrank.adapters.haystack import CrossRankRanker
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore

PASSAGES = {
    "everest": "Mount Everest, at 8,849 metres above sea level, is the highest mountain on Earth.",
    "k2": "K2, on the border of Pakistan and China, is the second-highest mountain at 8,611 metres.",
    "trekking": "The trekking season at Everest base camp runs from March to May.",
    "reef": "The Great Barrier Reef is the largest coral reef system in the world.",
    "bees": "A honey bee queen can lay up to 2,000 eggs a day.",
}


def main() -> None:
    store = InMemoryDocumentStore()
    store.write_documents(
        [Document(content=text, meta={"source": name}) for name, text in PASSAGES.items()]
    )
    pipeline = Pipeline()
    pipeline.add_component(
        "retriever", InMemoryBM25Retriever(document_store=store, top_k=len(PASSAGES))
    )
    pipeline.add_component("ranker", CrossRankRanker(top_k=2, score_threshold=0.5))
    pipeline.connect("retriever.documents", "ranker.documents")

    # Haystack 3 loads components only from allow-listed modules.
    pipeline = Pipeline.loads(pipeline.dumps(), allowed_modules=["crossrank.*"])
    print("pipeline saved to YAML and loaded back")

    for question in ("When can I trek to Everest base camp?", "Who wrote the novel Don Quixote?"):
        print(f"Q: {question}")
        documents = pipeline.run({"retriever": {"query": question}, "ranker": {"query": question}})[
            "ranker"
        ]["documents"]
        if not documents:
            print(
                "  -> nothing passed the threshold: answer 'not found' instead of letting the LLM guess"
            )
        for document in documents:
            print(
                f"  {document.meta['crossrank_rank']}. [{document.meta['source']}] score={document.score:.3f}"
            )


if __name__ == "__main__":
    main()
