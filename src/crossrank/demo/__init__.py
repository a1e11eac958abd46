"""The demo pipeline: BM25 retrieval over crossrank's own guide, then crossrank reranking."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from crossrank.errors import missing_dependency

__all__ = ["Passage", "load_guide", "DEMO_QUESTIONS", "OFF_TOPIC_QUESTION", "run_demo"]

DEMO_QUESTIONS = (
    "Where does crossrank keep downloaded models?",
    "What happens to evidence at the end of a long document?",
    "What happens when the threshold removes all candidates?",
    "How is memory use kept flat when a call receives many documents?",
)
OFF_TOPIC_QUESTION = "Who won the football world cup in 1954?"


@dataclass(frozen=True)
class Passage:
    title: str
    text: str


def load_guide() -> list[Passage]:
    """Split the packaged guide into passages (one paragraph each, titled by its section)."""
    text = resources.files("crossrank.demo").joinpath("guide.md").read_text(encoding="utf-8")
    passages = []
    title = ""
    for block in re.split(r"\n\s*\n", text):
        block = block.strip()
        if block.startswith("# "):
            title = block[2:].strip()
        elif block:
            passages.append(Passage(title, " ".join(block.split())))
    return passages


def run_demo(reranker: object, *, top: int = 3, threshold: float | str = "calibrated", write=print) -> None:  # type: ignore[no-untyped-def]
    """Print BM25's ranking and crossrank's for each demo question, then an off-topic one."""
    try:
        import bm25s
    except ImportError:
        raise missing_dependency("bm25s", "demo", "The demo's BM25 retriever") from None
    passages = load_guide()
    corpus = [f"{p.title}. {p.text}" for p in passages]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
    depth = min(8, len(corpus))
    for question in (*DEMO_QUESTIONS, OFF_TOPIC_QUESTION):
        ids, bm25_scores = retriever.retrieve(bm25s.tokenize([question], stopwords="en", show_progress=False), k=depth, show_progress=False)
        candidates = [int(i) for i in ids[0]]
        write(f"\nQ: {question}")
        write(f"  BM25 top {top}:")
        for rank, (doc, score) in enumerate(zip(candidates[:top], bm25_scores[0][:top]), start=1):
            write(f"    {rank}. [{score:5.2f}] {_snippet(passages[doc])}")
        result = reranker.rerank(question, [corpus[i] for i in candidates], top_k=top, threshold=threshold)  # type: ignore[attr-defined]
        write(f"  crossrank top {top} (threshold {result.threshold:.3f}):")
        if result.abstained:
            write(f"    nothing here is relevant: all {len(candidates)} candidates scored below the threshold "
                  f"(best {max(reranker.score([(question, corpus[i]) for i in candidates])):.3f})")  # type: ignore[attr-defined]
        for scored in result:
            write(f"    {scored.rank}. [{scored.score:5.3f}] {_snippet(passages[candidates[scored.index]])}")


def _snippet(passage: Passage, width: int = 88) -> str:
    text = f"({passage.title}) {passage.text}"
    return text if len(text) <= width else text[: width - 1] + "…"
