"""Let the retriever's BM25 scores break the reranker's near-ties (first-stage fusion).

Requires ``pip install 'crossrank[demo]'`` for bm25s.
"""

from __future__ import annotations

import bm25s

from crossrank import Reranker

CORPUS = [
    "Vitamin D deficiency is common in people who spend little time outdoors.",
    "Supplementing vitamin D reduced the rate of acute respiratory infections in a meta-analysis of trials.",
    "Vitamin C supplements did not prevent the common cold in the general population.",
    "Respiratory infections are the most frequent reason for visits to a family doctor.",
    "Sunlight exposure lets the skin synthesise vitamin D.",
]
QUERY = "Vitamin D supplements protect against respiratory infections"


def main() -> None:
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(CORPUS, stopwords="en", show_progress=False), show_progress=False)
    ids, scores = retriever.retrieve(bm25s.tokenize([QUERY], stopwords="en", show_progress=False), k=len(CORPUS),
                                     show_progress=False)
    candidates = [CORPUS[int(i)] for i in ids[0]]
    bm25_scores = [float(s) for s in scores[0]]

    alone = Reranker().warm_up()
    fused = Reranker(first_stage_weight=0.3)
    print(f"Q: {QUERY}")
    for name, result in (
        ("reranker alone", alone.rerank(QUERY, candidates, top_k=3)),
        ("fused with BM25 (first_stage_weight=0.3)", fused.rerank(QUERY, candidates, top_k=3, first_stage_scores=bm25_scores)),
    ):
        print(name)
        for doc in result:
            # The score is the reranker's calibrated probability either way; only the order is fused.
            print(f"  {doc.rank}. p={doc.score:.3f} bm25={bm25_scores[doc.index]:.2f} {doc.text}")


if __name__ == "__main__":
    main()
