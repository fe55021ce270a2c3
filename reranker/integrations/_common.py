"""What both framework adapters attach to a reranked node or document: scores, windows, latency."""

from __future__ import annotations

from typing import Any

from reranker.api import Reranker, RerankResult
from reranker.types import Hit

METADATA_KEYS: tuple[str, ...] = (
    "retrieval_score",
    "retrieval_rank",
    "rerank_rank",
    "rerank_score",
    "rerank_logit",
    "rerank_model",
    "rerank_chunks",
    "rerank_deciding_chunk",
    "rerank_truncated_at",
    "rerank_latency_ms",
    "rerank_load_ms",
)


def rerank_metadata(result: RerankResult, hit: Hit, retrieval_score: float | None) -> dict[str, Any]:
    """Metadata for one reranked item, plain JSON values only.

    `retrieval_score`/`retrieval_rank` are what the first stage gave it; `rerank_score` is
    sigmoid(logit) in [0, 1], `rerank_logit` the raw cross-encoder output; `rerank_chunks` lists
    every scored window (character offsets into the text that was scored, raw window score);
    `rerank_latency_ms` is the wall time of the whole call (all items share it).
    """
    return {
        "retrieval_score": retrieval_score,
        "retrieval_rank": result.position(hit) + 1,
        "rerank_rank": hit.rank,
        "rerank_score": hit.normalized,
        "rerank_logit": hit.score,
        "rerank_model": result.model,
        "rerank_chunks": [{"index": c.index, "start": c.start, "end": c.end, "score": c.raw} for c in hit.chunks],
        "rerank_deciding_chunk": hit.deciding_chunk,
        "rerank_truncated_at": hit.truncated_at,
        "rerank_latency_ms": result.timing.ms,
        "rerank_load_ms": result.timing.load_ms,
    }


def missing_framework(package: str, pip_name: str, error: ImportError) -> ImportError:
    """The ImportError raised when an optional framework is not installed, naming what to install."""
    return ImportError(
        f"{package} is not installed, and this integration needs it. Fix: pip install {pip_name} "
        f"(or `pip install -r requirements-dev.txt`). Underlying error: {error}"
    )


# The adapters' fields that are Reranker settings (both adapters expose the same ones).
RERANKER_SETTINGS: tuple[str, ...] = (
    "model",
    "top_n",
    "batch_size",
    "max_length",
    "chunk_tokens",
    "chunk_overlap",
    "aggregation",
    "trust_remote_code",
    "precision",
)


def reranker_from_settings(settings: Any) -> Reranker:
    """The project's reranker built from an adapter's fields."""
    return Reranker(**{name: getattr(settings, name) for name in RERANKER_SETTINGS})
