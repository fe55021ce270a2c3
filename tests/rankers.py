"""A ranker that is not a cross-encoder, for the ranker interface's tests: BM25 over the candidates alone.

Real scoring code, not a stand-in: Okapi BM25 (Robertson et al., TREC-3 1994; k1 = 1.2, b = 0.75) with the
Lucene IDF log(1 + (N - n + 0.5) / (n + 0.5)), where N, n and the average length come from the texts given,
and the project's BM25 tokenizer. It is named in settings as `ranker:tests.rankers:CandidateBM25`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from reranker.bm25 import Tokenizer
from reranker.ranker import rank_by_scores
from reranker.types import Document, RankedList

SPEC = "ranker:tests.rankers:CandidateBM25"


class CandidateBM25:
    """BM25 scores of each text for the query, its statistics taken from the candidate texts."""

    name = "candidate-bm25"

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.tokenize = Tokenizer(stemmer="english")

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        documents = [Counter(self.tokenize(text)) for text in texts]
        if not documents:
            return []
        lengths = [sum(d.values()) for d in documents]
        average = sum(lengths) / len(lengths) or 1.0
        scores = []
        for counts, length in zip(documents, lengths, strict=True):
            total = 0.0
            for term in set(self.tokenize(query)):
                containing = sum(1 for d in documents if term in d)
                idf = math.log(1 + (len(documents) - containing + 0.5) / (containing + 0.5))
                tf = counts[term]
                total += idf * tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * length / average))
            scores.append(total)
        return scores

    def rerank(self, query: str, candidates: Sequence[Document]) -> RankedList:
        return rank_by_scores(self, query, candidates, "BM25 over the candidates (unbounded; higher is more relevant)")
