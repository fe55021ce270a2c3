"""BM25 stage: one tokenizer, two interchangeable backends (bm25s, rank-bm25).

Scoring is Lucene's BM25 (Robertson et al., 1994; idf = ln(1 + (N - df + 0.5) / (df + 0.5))),
as Anserini/Pyserini use for the published BEIR baselines. Both backends compute it, so
they rank identically; rank-bm25 keeps its (k1 + 1) numerator factor, which does not change ranks.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from reranker.cache import atomic_directory
from reranker.corpus import Corpus
from reranker.types import Hit, RankedList

logger = logging.getLogger(__name__)

Backend = Literal["bm25s", "rank_bm25"]
SCORE_LABEL = "BM25 score (unbounded, ≥ 0; higher means more query-term matches)"
_WORD = re.compile(r"(?u)\b\w\w+\b")
CACHE_COMPLETE = "params.index.json"  # bm25s writes it with every index


@lru_cache(maxsize=1)
def english_stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@dataclass(frozen=True)
class Tokenizer:
    """Lowercase words of 2+ characters, English stopwords removed, optional Snowball stemming."""

    stemmer: str | None = "english"
    stopwords: bool = True

    def __call__(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        if self.stopwords:
            stop = english_stopwords()
            words = [w for w in words if w not in stop]
        if self.stemmer:
            words = _stemmer(self.stemmer).stemWords(words)
        return words


@lru_cache(maxsize=4)
def _stemmer(language: str):
    import Stemmer

    return Stemmer.Stemmer(language)


class _ScoringBackend(Protocol):
    def scores(self, query_tokens: list[str]) -> np.ndarray: ...


class _Bm25sBackend:
    def __init__(self, index) -> None:
        self._index = index
        self._vocab = index.vocab_dict

    @classmethod
    def build(cls, corpus_tokens: Sequence[list[str]], k1: float, b: float) -> _Bm25sBackend:
        import bm25s

        index = bm25s.BM25(k1=k1, b=b, method="lucene")
        index.index(list(corpus_tokens), show_progress=False)
        return cls(index)

    def save(self, folder: Path) -> None:
        self._index.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, documents: int, k1: float, b: float) -> _Bm25sBackend:
        import bm25s

        index = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        if (index.scores.get("num_docs"), index.k1, index.b, index.method) != (documents, k1, b, "lucene"):
            raise ValueError(f"it indexes {index.scores.get('num_docs')} documents with other settings")
        return cls(index)

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        known = [t for t in query_tokens if t in self._vocab]
        if not known:
            return np.zeros(self._index.scores["num_docs"], dtype=np.float32)
        return np.asarray(self._index.get_scores(known), dtype=np.float32)


class _RankBm25Backend:
    def __init__(self, corpus_tokens: Sequence[list[str]], k1: float, b: float) -> None:
        from rank_bm25 import BM25Okapi

        class _LuceneIdfOkapi(BM25Okapi):
            def _calc_idf(self, nd: dict[str, int]) -> None:
                self.idf = {w: math.log(1 + (self.corpus_size - f + 0.5) / (f + 0.5)) for w, f in nd.items()}

        # rank-bm25 divides by zero on an all-empty corpus; a placeholder token keeps it defined.
        self._index = _LuceneIdfOkapi([tokens or ["\x00"] for tokens in corpus_tokens], k1=k1, b=b)

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        return np.asarray(self._index.get_scores(query_tokens), dtype=np.float32)


class BM25Retriever:
    """Lexical first stage over a corpus."""

    stage = "bm25"

    def __init__(
        self,
        corpus: Corpus,
        *,
        backend: Backend = "bm25s",
        tokenizer: Tokenizer | None = None,
        k1: float = 0.9,
        b: float = 0.4,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.corpus = corpus
        self.tokenizer = tokenizer or Tokenizer()
        self.backend_name = backend
        self._ids = [doc.id for doc in corpus.documents]
        self.cache_status = "built"
        if backend == "rank_bm25":
            self._backend: _ScoringBackend = _RankBm25Backend(self._corpus_tokens(), k1, b)
        elif cache_dir is None:
            self._backend = _Bm25sBackend.build(self._corpus_tokens(), k1, b)
        else:
            self._backend = self._cached_bm25s(Path(cache_dir), k1, b)

    def _corpus_tokens(self) -> list[list[str]]:
        return [self.tokenizer(doc.full_text) for doc in self.corpus.documents]

    def _cached_bm25s(self, cache_dir: Path, k1: float, b: float) -> _Bm25sBackend:
        """The bm25s index from the cache (no tokenizing), else built and saved there."""
        import bm25s

        settings = f"{self.corpus.fingerprint}:{self.tokenizer!r}:{k1}:{b}:bm25s {bm25s.__version__}"
        folder = cache_dir / hashlib.sha256(settings.encode()).hexdigest()[:24]
        if (folder / CACHE_COMPLETE).is_file():
            try:
                backend = _Bm25sBackend.load(folder, len(self._ids), k1, b)
                self.cache_status = "loaded from cache"
                return backend
            except Exception as exc:  # any unreadable cache is rebuilt, never fatal
                logger.warning("BM25 index cache %s is unusable (%s); rebuilding it", folder, exc)
                shutil.rmtree(folder, ignore_errors=True)
        backend = _Bm25sBackend.build(self._corpus_tokens(), k1, b)
        try:
            atomic_directory(folder, backend.save, complete=CACHE_COMPLETE)
            self.cache_status = "built and cached"
        except OSError as exc:
            logger.warning("could not cache the BM25 index in %s (%s)", folder, exc)
        return backend

    def search(self, query: str, k: int) -> RankedList:
        scores = self._backend.scores(self.tokenizer(query))
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        # Ties broken by corpus order, so both backends and repeated runs agree.
        order = sorted(top.tolist(), key=lambda i: (-float(scores[i]), i))
        hits = tuple(
            Hit(doc_id=self._ids[i], rank=r, score=float(scores[i]), stage=self.stage)
            for r, i in enumerate(order, start=1)
            if scores[i] > 0
        )
        return RankedList(self.stage, hits, SCORE_LABEL)
