"""Dense stage: a sentence-transformers bi-encoder with a FAISS inner-product index.

Embeddings are L2-normalised, so inner product is cosine similarity. Corpus embeddings are
cached on disk, keyed by model and corpus content, so a second start never re-encodes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from reranker.cache import atomic_save, cache_root
from reranker.corpus import Corpus
from reranker.models import LoadedModel, load_bi_encoder
from reranker.speed import configure_threads, select_device
from reranker.types import Hit, RankedList

logger = logging.getLogger(__name__)

IndexKind = Literal["flat", "hnsw", "auto"]
SCORE_LABEL = "cosine similarity of bi-encoder embeddings (−1 to 1; higher is closer)"
HNSW_THRESHOLD = 200_000
ProgressCallback = Callable[[int, int], None]


def _model_fingerprint(loaded: LoadedModel) -> str:
    """The model's identity: its path plus the size and mtime of its files."""
    digest = hashlib.sha256(loaded.resolved.spec.encode())
    root = Path(loaded.resolved.path)
    for file in sorted(root.glob("*")):
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


class DenseRetriever:
    """Bi-encoder retrieval over a corpus with an exact (flat) or HNSW FAISS index."""

    stage = "dense"

    def __init__(
        self,
        corpus: Corpus,
        model: str,
        *,
        index: IndexKind = "auto",
        cache_dir: str | Path | None = None,
        batch_size: int = 64,
        progress: ProgressCallback | None = None,
        show_progress_bar: bool = False,
        device: str = "auto",
    ) -> None:
        self.corpus = corpus
        self.model_spec = model
        self._ids = [doc.id for doc in corpus.documents]
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "embeddings"
        self.batch_size = batch_size
        start = time.perf_counter()
        self.device = select_device(device).device
        self.loaded, _ = load_bi_encoder(model, device=self.device)
        self.model_load_ms = self.loaded.load_ms
        embeddings, self.cache_status = self._corpus_embeddings(progress, show_progress_bar)
        self.index = _build_index(embeddings, index)
        self.setup_ms = (time.perf_counter() - start) * 1000

    @property
    def cache_path(self) -> Path:
        key = hashlib.sha256(f"{_model_fingerprint(self.loaded)}:{self.corpus.fingerprint}".encode()).hexdigest()[:24]
        return self.cache_dir / f"{key}.npy"

    def _corpus_embeddings(self, progress: ProgressCallback | None, show_bar: bool) -> tuple[np.ndarray, str]:
        path = self.cache_path
        dim = self.loaded.model.get_embedding_dimension()
        if path.exists():
            try:
                cached = np.load(path, allow_pickle=False)
                if cached.shape == (len(self._ids), dim) and np.isfinite(cached).all():
                    return cached.astype(np.float32, copy=False), "loaded from cache"
                logger.warning("embedding cache %s has the wrong shape %s; re-encoding", path, cached.shape)
            except (OSError, ValueError) as exc:
                logger.warning("embedding cache %s is unreadable (%s); re-encoding", path, exc)
        embeddings = self._encode_corpus(progress, show_bar)
        atomic_save(path, embeddings)
        (path.with_suffix(".json")).write_text(
            json.dumps({"model": self.model_spec, "corpus": self.corpus.name, "documents": len(self._ids), "dim": dim})
        )
        return embeddings, "encoded"

    def _encode_corpus(self, progress: ProgressCallback | None, show_bar: bool) -> np.ndarray:
        # torch's thread count is process-wide: a reranker may have lowered it while the machine was busy.
        configure_threads(device=self.device)
        texts = [document_text(doc.title, doc.text) for doc in self.corpus.documents]
        return encode_longest_first(self.loaded.model, texts, self.batch_size, progress, show_bar)

    def encode_query(self, query: str) -> np.ndarray:
        vector = self.loaded.model.encode([query], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vector, dtype=np.float32)

    def search(self, query: str, k: int) -> RankedList:
        k = min(k, len(self._ids))
        scores, indices = self.index.search(self.encode_query(query), k)
        hits = tuple(
            Hit(doc_id=self._ids[i], rank=r, score=float(s), stage=self.stage)
            for r, (s, i) in enumerate(zip(scores[0], indices[0], strict=True), start=1)
            if i >= 0
        )
        return RankedList(self.stage, hits, SCORE_LABEL)


def encode_longest_first(
    model, texts: list[str], batch_size: int = 64, progress: ProgressCallback | None = None, show_bar: bool = False
) -> np.ndarray:
    """L2-normalised embeddings of `texts`, in their order.

    Encodes in slices so a UI can report progress. Sorting the whole list by length first (not only
    within a slice, as the library does) keeps every batch's padding minimal.
    """
    total = len(texts)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    ordered = [texts[i] for i in order]
    step = max(batch_size * 4, 256)
    parts = []
    for start in range(0, total, step):
        parts.append(
            model.encode(
                ordered[start : start + step],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_bar,
            )
        )
        if progress:
            progress(min(start + step, total), total)
    embeddings = np.empty((total, parts[0].shape[1]), dtype=np.float32)
    embeddings[order] = np.vstack(parts)
    return embeddings


def document_text(title: str, text: str) -> str:
    return f"{title}. {text}" if title else text


def _build_index(embeddings: np.ndarray, kind: IndexKind):
    import faiss

    dim = embeddings.shape[1]
    if kind == "hnsw" or (kind == "auto" and len(embeddings) >= HNSW_THRESHOLD):
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(embeddings))
    return index
