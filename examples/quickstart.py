"""Rerank a handful of passages with the embedded default model, then ask an off-topic question."""

from __future__ import annotations

from crossrank import Document, Reranker

PASSAGES = [
    Document("Berlin is well known for its museums, galleries and nightlife.", {"id": "culture"}),
    Document("Berlin has a population of 3,520,031 registered inhabitants.", {"id": "population"}),
    Document("The Spree river flows through the centre of Berlin.", {"id": "river"}),
    Document("Paris is the capital and most populous city of France.", {"id": "paris"}),
]


def main() -> None:
    reranker = Reranker().warm_up()
    result = reranker.rerank("How many people live in Berlin?", PASSAGES, top_k=2)
    print("How many people live in Berlin?")
    for doc in result:
        print(f"  {doc.rank}. {doc.score:.3f} {doc.metadata['id']}: {doc.text}")
    off_topic = reranker.rerank("Who wrote Don Quixote?", PASSAGES, threshold=0.5)
    print("Who wrote Don Quixote?")
    print("  nothing here is relevant" if off_topic.abstained else f"  {len(off_topic)} passages kept")
    print(f"stats: {result.stats.pairs_scored} pairs in {len(result.stats.batches)} batch(es), "
          f"{result.stats.model_ms:.0f} ms in the model")


if __name__ == "__main__":
    main()
