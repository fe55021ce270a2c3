"""LlamaIndex adapters: a node postprocessor that reranks with this project's chunk-aware
cross-encoder, and a retriever over a `reranker` corpus (BM25) to feed it.

`CrossEncoderRerank(model="auto", top_n=2)` is a drop-in for LlamaIndex's
`SentenceTransformerRerank(model=..., top_n=...)`: nodes longer than the model's input are
scored window by window instead of being silently truncated, the first-stage score is kept in
metadata, and the call's latency travels with every node. Needs `pip install llama-index-core`.
"""

from __future__ import annotations

from typing import Any

from reranker.integrations._common import METADATA_KEYS, missing_framework, rerank_metadata, reranker_from_settings

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.callbacks import CBEventType, EventPayload
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
except ImportError as exc:
    raise missing_framework("LlamaIndex (llama-index-core)", "llama-index-core", exc) from exc

from reranker.api import DEFAULTS, Reranker
from reranker.bm25 import BM25Retriever
from reranker.chunking import Aggregation
from reranker.corpus import Corpus
from reranker.errors import ConfigError
from reranker.pipeline import AUTO
from reranker.speed import Precision

__all__ = ["METADATA_KEYS", "CorpusBM25Retriever", "CrossEncoderRerank"]


class CrossEncoderRerank(BaseNodePostprocessor):
    """Reranks `NodeWithScore` lists with a chunk-aware cross-encoder and keeps the best `top_n`.

    A drop-in for LlamaIndex's `SentenceTransformerRerank(model=..., top_n=...)`. Call
    `postprocess_nodes(nodes, query_str=...)`, or pass it in `node_postprocessors`. Each returned node
    is a copy whose `score` is sigmoid(logit) in [0, 1] and whose metadata gains the keys in
    `METADATA_KEYS` (first-stage score and rank, raw logit, every scored window, the deciding window,
    latency); those keys are excluded from the text LlamaIndex sends to embedding models and LLMs.
    Window offsets index into `node.get_content(metadata_mode=metadata_mode)`, the text that was scored.

    Args:
        top_n: Nodes to return, best first.
        model: Cross-encoder: a hub id, a local directory or "auto" (see `reranker.Reranker`).
        **kwargs: The other fields: `chunk_tokens`, `chunk_overlap`, `aggregation`, `batch_size`,
            `max_length`, `metadata_mode`, `trust_remote_code`, `precision`.

    Raises:
        ConfigError: A setting is out of range.
        ModelUnavailableError: The model resolves nowhere.
        ValueError: `postprocess_nodes` was called without a query.

    Example:
        >>> from llama_index.core.schema import NodeWithScore, TextNode
        >>> from reranker.integrations.llama_index import CrossEncoderRerank
        >>> nodes = [NodeWithScore(node=TextNode(id_=i, text=t), score=0.5) for i, t in
        ...          [("bread", "Sourdough is leavened by wild yeast."), ("ml", "Attention weighs value vectors.")]]
        >>> reranked = CrossEncoderRerank(model="auto", top_n=1).postprocess_nodes(nodes, query_str="attention")
        >>> len(reranked), reranked[0].node.metadata["retrieval_score"]
        (1, 0.5)
    """

    model: str = Field(default=AUTO, description='Cross-encoder: hub id, local directory or "auto".')
    top_n: int = Field(default=2, description="Number of nodes to return, best first.")
    chunk_tokens: int = Field(default=DEFAULTS.chunk_tokens, description="Tokens per scored window of a long node.")
    chunk_overlap: int = Field(default=DEFAULTS.chunk_overlap, description="Tokens shared by consecutive windows.")
    aggregation: Aggregation = Field(default=DEFAULTS.aggregation, description="Node score from window scores: max|mean|first.")
    batch_size: int = Field(default=DEFAULTS.batch_size, description="Pairs per forward pass.")
    max_length: int | None = Field(default=DEFAULTS.max_length, description="Tokens per pair; None uses the model's own limit.")
    metadata_mode: MetadataMode = Field(default=MetadataMode.EMBED, description="Which node text is scored.")
    trust_remote_code: bool = Field(default=DEFAULTS.trust_remote_code, description="Let model repositories run their own code.")
    precision: Precision = Field(default=DEFAULTS.precision, description="auto, fp32, bf16 or fp16 matrix products.")
    _reranker: Reranker = PrivateAttr()

    def __init__(self, top_n: int = 2, model: str = AUTO, **kwargs: Any) -> None:
        super().__init__(top_n=top_n, model=model, **kwargs)
        self._reranker = reranker_from_settings(self)

    @classmethod
    def class_name(cls) -> str:
        return "RerankLensCrossEncoderRerank"

    @property
    def resolved_model(self) -> str:
        """The model "auto" (or the given spec) resolved to."""
        return self._reranker.resolved_model

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("CrossEncoderRerank needs the query: pass query_str= or query_bundle=.")
        if not nodes:
            return []
        texts = [item.node.get_content(metadata_mode=self.metadata_mode) for item in nodes]
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: self.resolved_model,
                EventPayload.QUERY_STR: query_bundle.query_str,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            result = self._reranker.rerank(query_bundle.query_str, texts, top_n=self.top_n)
            reranked = []
            for hit in result:
                original = nodes[result.position(hit)]
                node = original.node.model_copy()
                node.metadata = {**original.node.metadata, **rerank_metadata(result, hit, original.score)}
                node.excluded_embed_metadata_keys = _with_keys(original.node.excluded_embed_metadata_keys)
                node.excluded_llm_metadata_keys = _with_keys(original.node.excluded_llm_metadata_keys)
                reranked.append(NodeWithScore(node=node, score=hit.normalized))
            event.on_end(payload={EventPayload.NODES: reranked})
        return reranked


class CorpusBM25Retriever(BaseRetriever):
    """A LlamaIndex retriever over a `reranker` corpus: BM25, one `TextNode` per document.

    Node ids are document ids, `node.text` is the document text and the title (if any) is the
    `title` metadata; `score` is the BM25 score.

    Args:
        corpus: The documents to search, e.g. `reranker.load_dataset(path).corpus`.
        similarity_top_k: Nodes each `retrieve(query)` returns.
        **kwargs: Passed to LlamaIndex's `BaseRetriever` (e.g. `callback_manager`).

    Raises:
        ConfigError: `similarity_top_k` is below 1.

    Example:
        >>> from reranker import Document, build_corpus
        >>> from reranker.integrations.llama_index import CorpusBM25Retriever
        >>> corpus = build_corpus([Document("a", "cats purr"), Document("b", "dogs bark")])
        >>> [item.node.node_id for item in CorpusBM25Retriever(corpus, similarity_top_k=1).retrieve("cats")]
        ['a']
    """

    def __init__(self, corpus: Corpus, similarity_top_k: int = 10, **kwargs: Any) -> None:
        if similarity_top_k < 1:
            raise ConfigError("similarity_top_k must be at least 1")
        super().__init__(**kwargs)
        self.corpus = corpus
        self.similarity_top_k = similarity_top_k
        self._bm25 = BM25Retriever(corpus)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        ranked = self._bm25.search(query_bundle.query_str, self.similarity_top_k)
        results = []
        for hit in ranked:
            doc = self.corpus[hit.doc_id]
            metadata = {"title": doc.title} if doc.title else {}
            results.append(NodeWithScore(node=TextNode(id_=doc.id, text=doc.text, metadata=metadata), score=hit.score))
        return results


def _with_keys(existing: list[str]) -> list[str]:
    return [*existing, *(key for key in METADATA_KEYS if key not in existing)]
