"""LlamaIndex and LangChain adapters, with real framework objects, offline.

A retriever built on the bundled corpus feeds each adapter; the reranked items must come back
ordered by the cross-encoder's scores (checked against the API directly), with the first-stage
score, window scores and latency in metadata, and the inputs left untouched.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BUNDLED_MODEL, SEED_DOCUMENTS, SEED_QUERY

from reranker import Reranker, load_dataset
from reranker.integrations._common import METADATA_KEYS

REPO = Path(__file__).resolve().parents[1]
KNOWLEDGE = REPO / "corpora" / "knowledge"
CHUNKING = {"chunk_tokens": 24, "chunk_overlap": 6}
QUERY = SEED_QUERY
TOP_N = 4


@pytest.fixture(scope="module")
def corpus():
    """The bundled knowledge corpus, as users load it."""
    return load_dataset(KNOWLEDGE).corpus


@pytest.fixture(scope="module")
def direct(corpus):
    return Reranker(BUNDLED_MODEL, **CHUNKING)


def check_reranked(items, originals, direct, texts, retrieval_scores):
    """Shared checks: order, metadata, and agreement with the API on the same texts."""
    metas = [meta for _, meta in items]
    assert len(items) == min(TOP_N, len(originals))
    assert [meta["rerank_rank"] for meta in metas] == list(range(1, len(items) + 1))
    logits = [meta["rerank_logit"] for meta in metas]
    assert logits == sorted(logits, reverse=True)
    expected = direct.rerank(QUERY, texts)
    assert [str(meta["retrieval_rank"] - 1) for meta in metas] == expected.ranked.doc_ids()[: len(items)]
    for (item_id, meta), hit in zip(items, expected, strict=False):
        position = meta["retrieval_rank"] - 1
        assert item_id == originals[position]
        assert meta["retrieval_score"] == retrieval_scores[position]
        assert meta["rerank_logit"] == pytest.approx(hit.score, abs=1e-4)
        assert meta["rerank_score"] == pytest.approx(hit.normalized, abs=1e-4)
        assert meta["rerank_model"] == BUNDLED_MODEL
        assert len(meta["rerank_chunks"]) == len(hit.chunks) >= 1
        deciding = meta["rerank_chunks"][meta["rerank_deciding_chunk"]]
        assert deciding["score"] == pytest.approx(meta["rerank_logit"])
        assert deciding["end"] <= len(texts[position])
        assert meta["rerank_latency_ms"] > 0
    assert len({meta["rerank_latency_ms"] for meta in metas}) == 1  # one call, one latency
    assert any(len(meta["rerank_chunks"]) > 1 for meta in metas), "no node was long enough to need windows"


# --- LlamaIndex -------------------------------------------------------------------------------


def test_llama_index_retriever_nodes_come_back_reranked(corpus, direct):
    from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

    from reranker.integrations.llama_index import CorpusBM25Retriever, CrossEncoderRerank

    nodes = CorpusBM25Retriever(corpus, similarity_top_k=8).retrieve(QUERY)
    assert len(nodes) >= TOP_N and all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    before = [(n.node.node_id, n.score, dict(n.node.metadata)) for n in nodes]

    postprocessor = CrossEncoderRerank(model=BUNDLED_MODEL, top_n=TOP_N, **CHUNKING)
    reranked = postprocessor.postprocess_nodes(nodes, query_str=QUERY)

    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    items = [(n.node.node_id, n.node.metadata) for n in reranked]
    check_reranked(items, [n.node.node_id for n in nodes], direct, texts, [n.score for n in nodes])
    for item in reranked:
        assert item.score == item.node.metadata["rerank_score"]
        assert set(METADATA_KEYS) <= set(item.node.metadata)
        for mode in (MetadataMode.EMBED, MetadataMode.LLM):
            assert "rerank_" not in item.node.get_content(metadata_mode=mode)
    assert [(n.node.node_id, n.score, dict(n.node.metadata)) for n in nodes] == before  # inputs untouched


def test_llama_index_postprocessor_edge_cases():
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

    from reranker.integrations.llama_index import CrossEncoderRerank

    postprocessor = CrossEncoderRerank(model=BUNDLED_MODEL, top_n=1)
    assert isinstance(postprocessor, BaseNodePostprocessor) and postprocessor.resolved_model == BUNDLED_MODEL
    assert postprocessor.postprocess_nodes([], query_bundle=QueryBundle(QUERY)) == []
    node = NodeWithScore(node=TextNode(text="attention weighs tokens"), score=None)
    with pytest.raises(ValueError, match="needs the query"):
        postprocessor.postprocess_nodes([node])
    (only,) = postprocessor.postprocess_nodes([node], query_str=QUERY)
    assert only.node.metadata["retrieval_score"] is None and only.node.metadata["retrieval_rank"] == 1

    titled = NodeWithScore(node=TextNode(text="attention weighs tokens", metadata={"title": "A rather long title"}), score=2.0)
    bare = CrossEncoderRerank(model=BUNDLED_MODEL, top_n=1, metadata_mode=MetadataMode.NONE)
    (scored,) = bare.postprocess_nodes([titled], query_str=QUERY)
    assert scored.node.metadata["rerank_chunks"][0]["end"] == len("attention weighs tokens")


# --- LangChain --------------------------------------------------------------------------------


def test_langchain_retriever_documents_come_back_reranked(corpus, direct):
    from langchain_core.documents import BaseDocumentCompressor, Document
    from langchain_core.retrievers import BaseRetriever

    from reranker.integrations.langchain import CorpusBM25Retriever, CrossEncoderCompressor

    retriever = CorpusBM25Retriever(corpus=corpus, k=8)
    assert isinstance(retriever, BaseRetriever)
    documents = retriever.invoke(QUERY)
    assert len(documents) >= TOP_N and all(isinstance(d, Document) for d in documents)
    before = [d.model_copy(deep=True) for d in documents]

    compressor = CrossEncoderCompressor(model=BUNDLED_MODEL, top_n=TOP_N, **CHUNKING)
    assert isinstance(compressor, BaseDocumentCompressor)
    reranked = compressor.compress_documents(documents, QUERY)

    texts = [d.page_content for d in documents]
    items = [(d.id, d.metadata) for d in reranked]
    check_reranked(items, [d.id for d in documents], direct, texts, [d.metadata["score"] for d in documents])
    for doc in reranked:
        assert set(METADATA_KEYS) <= set(doc.metadata) and doc.metadata["title"] == corpus[doc.id].title
    assert documents == before  # inputs untouched


def test_langchain_compressor_edge_cases():
    from langchain_core.documents import Document

    from reranker.integrations.langchain import CrossEncoderCompressor

    compressor = CrossEncoderCompressor(model=BUNDLED_MODEL, top_n=2, retrieval_score_key="similarity")
    assert compressor.compress_documents([], QUERY) == []
    docs = [Document(page_content=doc.text, metadata={"similarity": i / 10}) for i, doc in enumerate(SEED_DOCUMENTS)]
    reranked = compressor.compress_documents(docs, QUERY)
    assert len(reranked) == 2
    for doc in reranked:
        assert doc.metadata["retrieval_score"] == doc.metadata["similarity"] == (doc.metadata["retrieval_rank"] - 1) / 10
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        CrossEncoderCompressor(model=BUNDLED_MODEL, top_n=0)


# --- optional extras --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "framework", "pip_name"),
    [
        ("reranker.integrations.llama_index", "llama_index", "llama-index-core"),
        ("reranker.integrations.langchain", "langchain_core", "langchain-core"),
    ],
)
def test_missing_framework_names_the_package_to_install(monkeypatch, module, framework, pip_name):
    for name in [n for n in sys.modules if n == framework or n.startswith(framework + ".")] + [framework]:
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules makes `import name` fail
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError, match=f"pip install {pip_name}"):
        importlib.import_module(module)


def test_core_package_never_imports_the_frameworks():
    code = (
        "import sys, reranker, reranker.api, reranker.integrations;"
        "loaded = sorted(m for m in sys.modules if m.startswith(('llama_index', 'langchain')));"
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_async_entry_points_rerank_the_same_way():
    import asyncio

    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, TextNode

    from reranker.integrations.langchain import CrossEncoderCompressor
    from reranker.integrations.llama_index import CrossEncoderRerank

    texts = [doc.full_text for doc in SEED_DOCUMENTS]
    nodes = [NodeWithScore(node=TextNode(text=text), score=1.0) for text in texts]
    documents = [Document(page_content=text) for text in texts]
    postprocessor = CrossEncoderRerank(model=BUNDLED_MODEL, top_n=3)
    compressor = CrossEncoderCompressor(model=BUNDLED_MODEL, top_n=3)

    async def both():
        return await asyncio.gather(
            postprocessor.apostprocess_nodes(nodes, query_str=QUERY), compressor.acompress_documents(documents, QUERY)
        )

    async_nodes, async_documents = asyncio.run(both())
    sync_nodes = postprocessor.postprocess_nodes(nodes, query_str=QUERY)
    assert [n.node.text for n in async_nodes] == [n.node.text for n in sync_nodes]
    assert [d.page_content for d in async_documents] == [n.node.text for n in sync_nodes]
