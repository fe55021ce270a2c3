"""Rerank Lens: see what BM25, dense retrieval, rank fusion and cross-encoder reranking do to a query."""

from __future__ import annotations

from reranker.api import Reranker, RerankResult, rerank
from reranker.corpus import Corpus, Dataset, build_corpus, load_dataset, load_documents
from reranker.cross_encoder import CrossEncoderReranker
from reranker.errors import ConfigError, DataError, ModelUnavailableError, RerankLensError
from reranker.explain import Explanation, SpanContribution
from reranker.pipeline import Pipeline, PipelineConfig
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
    "Reranker",
    "SpanContribution",
    "StageTiming",
    "build_corpus",
    "load_dataset",
    "load_documents",
    "rerank",
]
