"""LangChain adapters: a document compressor that reranks with this project's chunk-aware
cross-encoder, and a retriever over a `reranker` corpus (BM25) to feed it.

Use `CrossEncoderCompressor(model="auto", top_n=3)` wherever LangChain takes a
`BaseDocumentCompressor` (e.g. `ContextualCompressionRetriever`), or call `compress_documents`
directly. Needs `pip install langchain-core`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reranker.integrations._common import METADATA_KEYS, missing_framework, rerank_metadata, reranker_from_settings

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun, Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict, Field, PrivateAttr
except ImportError as exc:
    raise missing_framework("LangChain (langchain-core)", "langchain-core", exc) from exc

from reranker.api import DEFAULTS, Reranker
from reranker.bm25 import BM25Retriever
from reranker.chunking import Aggregation
from reranker.corpus import Corpus
from reranker.pipeline import AUTO
from reranker.speed import Precision

__all__ = ["METADATA_KEYS", "CorpusBM25Retriever", "CrossEncoderCompressor"]


class CrossEncoderCompressor(BaseDocumentCompressor):
    """Reranks LangChain `Document`s with a chunk-aware cross-encoder and keeps the best `top_n`.

    A `BaseDocumentCompressor`: call `compress_documents(documents, query)`, or hand it to
    `ContextualCompressionRetriever`. Returns new documents (inputs are not modified) whose metadata
    gains the keys in `METADATA_KEYS`: `rerank_score` is sigmoid(logit) in [0, 1], `retrieval_score`
    is the input's `metadata[retrieval_score_key]` if it had one, window offsets index into `page_content`.

    Args:
        model: Cross-encoder: a hub id, a local directory or "auto" (see `reranker.Reranker`).
        top_n: Documents to return, best first.
        chunk_tokens: Tokens per scored window of a long document.
        chunk_overlap: Tokens consecutive windows share.
        aggregation: A document's score from its window scores: "max", "mean" or "first".
        batch_size: Pairs per forward pass.
        max_length: Tokens per pair; None keeps the model's own limit.
        retrieval_score_key: Metadata key holding the first-stage score.
        trust_remote_code: Let the model repository run its own code.
        precision: "auto", "fp32", "bf16" or "fp16" matrix products.

    Raises:
        ConfigError: A setting is out of range.
        ModelUnavailableError: The model resolves nowhere.

    Example:
        >>> from langchain_core.documents import Document
        >>> from reranker.integrations.langchain import CrossEncoderCompressor
        >>> documents = [Document(page_content="Sourdough is leavened by wild yeast.", metadata={"score": 2.0}),
        ...              Document(page_content="Attention weighs value vectors.", metadata={"score": 1.0})]
        >>> kept = CrossEncoderCompressor(model="auto", top_n=1).compress_documents(documents, "attention")
        >>> len(kept), 0.0 <= kept[0].metadata["rerank_score"] <= 1.0
        (1, True)
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = Field(default=AUTO, description='Cross-encoder: hub id, local directory or "auto".')
    top_n: int = Field(default=3, ge=1, description="Number of documents to return, best first.")
    chunk_tokens: int = Field(default=DEFAULTS.chunk_tokens, description="Tokens per scored window of a long document.")
    chunk_overlap: int = Field(default=DEFAULTS.chunk_overlap, description="Tokens shared by consecutive windows.")
    aggregation: Aggregation = Field(default=DEFAULTS.aggregation, description="Document score from window scores.")
    batch_size: int = Field(default=DEFAULTS.batch_size, description="Pairs per forward pass.")
    max_length: int | None = Field(default=DEFAULTS.max_length, description="Tokens per pair; None uses the model's own limit.")
    retrieval_score_key: str = Field(default="score", description="Metadata key holding the first-stage score.")
    trust_remote_code: bool = Field(default=DEFAULTS.trust_remote_code, description="Let model repositories run their own code.")
    precision: Precision = Field(default=DEFAULTS.precision, description="auto, fp32, bf16 or fp16 matrix products.")
    _reranker: Reranker = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._reranker = reranker_from_settings(self)

    @property
    def resolved_model(self) -> str:
        """The model "auto" (or the given spec) resolved to."""
        return self._reranker.resolved_model

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """The `top_n` documents most relevant to the query, best first, with rerank metadata.

        Args:
            documents: What the first stage retrieved; not modified.
            query: The query text.
            callbacks: LangChain callbacks (unused).

        Returns:
            New `Document`s, best first, their metadata extended with `METADATA_KEYS`.

        Raises:
            ConfigError: The query is empty.
        """
        if not documents:
            return []
        result = self._reranker.rerank(query, [doc.page_content for doc in documents], top_n=self.top_n)
        reranked = []
        for hit in result:
            original = documents[result.position(hit)]
            score = original.metadata.get(self.retrieval_score_key)
            metadata = {**original.metadata, **rerank_metadata(result, hit, score)}
            reranked.append(Document(page_content=original.page_content, metadata=metadata, id=original.id))
        return reranked


class CorpusBM25Retriever(BaseRetriever):
    """A LangChain retriever over a `reranker` corpus: BM25, one `Document` per corpus document.

    `page_content` is the title and text, `id` the document id; metadata holds `title`, the BM25
    `score` and the 1-based `rank`.

    Args:
        corpus: The documents to search, e.g. `reranker.load_dataset(path).corpus`.
        k: Documents each `invoke(query)` returns.

    Example:
        >>> from reranker import Document, build_corpus
        >>> from reranker.integrations.langchain import CorpusBM25Retriever
        >>> corpus = build_corpus([Document("a", "cats purr"), Document("b", "dogs bark")])
        >>> [doc.id for doc in CorpusBM25Retriever(corpus=corpus, k=1).invoke("cats")]
        ['a']
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    corpus: Corpus
    k: int = Field(default=10, ge=1, description="Documents to return.")
    _bm25: BM25Retriever = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._bm25 = BM25Retriever(self.corpus)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        documents = []
        for hit in self._bm25.search(query, self.k):
            doc = self.corpus[hit.doc_id]
            metadata = {"title": doc.title, "score": hit.score, "rank": hit.rank}
            documents.append(Document(page_content=doc.full_text, metadata=metadata, id=doc.id))
        return documents
