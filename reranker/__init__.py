"""Rerank Lens: see what BM25, dense retrieval, rank fusion and cross-encoder reranking do to a query."""

from __future__ import annotations

from reranker.api import Reranker, RerankResult, rerank
from reranker.corpus import Corpus, Dataset, build_corpus, load_dataset, load_documents
from reranker.cross_encoder import CrossEncoderReranker
from reranker.errors import ConfigError, DataError, ModelUnavailableError, RerankLensError
from reranker.explain import Explanation, SpanContribution
from reranker.pipeline import Pipeline, PipelineConfig, RerankStages
from reranker.types import ChunkScore, Document, Hit, PipelineResult, RankedList, StageTiming

__all__ = [
    "ChunkScore",
    "ConfigError",
    "Corpus",
    "CrossEncoderReranker",
    "DataError",
    "Dataset",
    "Document",
    "Explanation",
    "Hit",
    "ModelUnavailableError",
    "Pipeline",
    "PipelineConfig",
    "PipelineResult",
    "RankedList",
    "RerankLensError",
    "RerankResult",
    "RerankStages",
    "Reranker",
    "SpanContribution",
    "StageTiming",
    "build_corpus",
    "load_dataset",
    "load_documents",
    "rerank",
]


def __getattr__(name: str) -> str:
    if name == "__version__":  # read on demand: the checkout's pyproject.toml or the installed metadata
        from reranker.distribution import version

        return version()
    raise AttributeError(f"module 'reranker' has no attribute {name!r}")
