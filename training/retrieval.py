"""Candidate retrieval for mining negatives and building dev candidate lists: BM25 and a bi-encoder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from crossrank.errors import missing_dependency

__all__ = ["Bm25Index", "DenseIndex"]


class Bm25Index:
    """BM25 over a corpus (``bm25s``), returning document ids with scores.

    ``stemmer`` is ``"english"`` (Snowball), ``"porter"`` or ``"none"``, as for evaluation candidates;
    ``k1``, ``b`` and the stopwords are the evaluation's (:data:`crossrank.evaluation.candidates.BM25_K1`...).

    Example:
        >>> index = Bm25Index({"d1": "paris is the capital of france", "d2": "berlin"})  # doctest: +SKIP
        >>> index.search(["capital of france"], k=1)[0][0][0]  # doctest: +SKIP
        'd1'
    """

    def __init__(self, corpus: Mapping[str, str], *, stemmer: str = "english") -> None:
        try:
            import bm25s
        except ImportError:
            raise missing_dependency("bm25s", "train", "BM25 negative mining") from None
        from crossrank.evaluation.candidates import BM25_B, BM25_K1, BM25_STOPWORDS, load_stemmer

        self._bm25s = bm25s
        self._stemmer = load_stemmer(stemmer)
        self.ids = list(corpus)
        self._stopwords = BM25_STOPWORDS
        self.retriever = bm25s.BM25(k1=BM25_K1, b=BM25_B)
        texts = [corpus[i] for i in self.ids]
        self.retriever.index(bm25s.tokenize(texts, stopwords=self._stopwords, stemmer=self._stemmer, show_progress=False), show_progress=False)

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        k = min(k, len(self.ids))
        if not queries or k < 1:
            return [[] for _ in queries]
        tokens = self._bm25s.tokenize(list(queries), stopwords=self._stopwords, stemmer=self._stemmer, show_progress=False)
        indices, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        return [
            [(self.ids[int(i)], float(s)) for i, s in zip(row, row_scores) if float(s) > 0]
            for row, row_scores in zip(indices, scores)
        ]


class DenseIndex:
    """Cosine search with the all-MiniLM-L6-v2 bi-encoder (sentence-transformers)."""

    def __init__(self, corpus: Mapping[str, str], *, batch_size: int = 64) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise missing_dependency("sentence-transformers", "train", "The bi-encoder") from None
        from crossrank.evaluation.candidates import dense_model_path

        self.model = SentenceTransformer(str(dense_model_path()), device="cpu")
        self.ids = list(corpus)
        self.embeddings = np.asarray(
            self.model.encode([corpus[i] for i in self.ids], batch_size=batch_size, normalize_embeddings=True)
        )

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        if not queries:
            return []
        encoded = np.asarray(self.model.encode(list(queries), normalize_embeddings=True))
        similarities = encoded @ self.embeddings.T
        k = min(k, len(self.ids))
        results = []
        for row in similarities:
            top = np.argsort(-row, kind="stable")[:k]
            results.append([(self.ids[int(i)], float(row[i])) for i in top])
        return results
