from __future__ import annotations

import numpy as np
import pytest

from reranker.bm25 import BM25Retriever, Tokenizer
from reranker.corpus import build_corpus
from reranker.types import Document

DOCS = [
    Document("d1", "The cat sat on the mat. Cats like mats."),
    Document("d2", "Dogs chase cats in the garden."),
    Document("d3", "A garden of roses and tulips."),
    Document("d4", "Search engines rank documents with BM25 and term frequencies."),
    Document("d5", "Ranking functions such as BM25 saturate term frequency with k1."),
    Document("d6", "The dog sleeps."),
]
QUERIES = ["cat mats", "garden dogs", "bm25 ranking term frequency", "roses", "sleeping dog", "chased cats"]


def test_tokenizer_lowercases_drops_stopwords_and_stems():
    # Lucene's English stopword list (as Anserini uses for the BEIR baselines): "the", "is", "a" go.
    assert Tokenizer()("The Cats is RUNNING quickly") == ["cat", "run", "quick"]
    assert Tokenizer(stemmer=None)("The Cats is RUNNING") == ["cats", "running"]
    assert Tokenizer()("a I x") == []  # single characters are not words


@pytest.fixture(scope="module")
def corpus():
    return build_corpus(DOCS)


def test_backends_rank_identically(corpus):
    fast = BM25Retriever(corpus, backend="bm25s")
    reference = BM25Retriever(corpus, backend="rank_bm25")
    for query in QUERIES:
        a, b = fast.search(query, 6), reference.search(query, 6)
        assert a.doc_ids() == b.doc_ids(), query
        # rank-bm25 keeps the (k1 + 1) numerator factor that Lucene drops: scores differ by that constant.
        ratio = np.array([h.score for h in b]) / np.array([h.score for h in a])
        assert np.allclose(ratio, 1.9, rtol=1e-4), query


def test_hand_checked_rankings(corpus):
    bm25 = BM25Retriever(corpus)
    assert bm25.search("cat mats", 3).doc_ids()[0] == "d1"
    assert bm25.search("roses", 3).doc_ids() == ["d3"]
    assert bm25.search("sleeping dog", 2).doc_ids() == ["d6", "d2"]  # shorter document first


def test_no_match_returns_empty_list_with_label(corpus):
    result = BM25Retriever(corpus).search("zebra xylophone", 5)
    assert len(result) == 0 and "BM25" in result.score_label


def test_k_larger_than_corpus_is_clamped(corpus):
    assert len(BM25Retriever(corpus).search("the cat dog garden bm25 roses", 100)) <= len(DOCS)


def _scored(retriever: BM25Retriever) -> list[list[tuple[str, float]]]:
    return [[(h.doc_id, round(h.score, 5)) for h in retriever.search(q, 6)] for q in QUERIES]


def test_index_cache_loads_without_tokenizing_the_corpus(corpus, tmp_path, monkeypatch):
    built = BM25Retriever(corpus, cache_dir=tmp_path)
    assert built.cache_status == "built and cached"
    (folder,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert (folder / "params.index.json").is_file()

    def no_tokenizing(self):
        raise AssertionError("a cached index must not tokenize the corpus again")

    monkeypatch.setattr(BM25Retriever, "_corpus_tokens", no_tokenizing)
    loaded = BM25Retriever(corpus, cache_dir=tmp_path)
    assert loaded.cache_status == "loaded from cache"
    assert _scored(loaded) == _scored(built)


def test_index_cache_is_keyed_by_corpus_and_settings(corpus, tmp_path):
    BM25Retriever(corpus, cache_dir=tmp_path)
    BM25Retriever(corpus, cache_dir=tmp_path, tokenizer=Tokenizer(stemmer=None))
    BM25Retriever(corpus, cache_dir=tmp_path, k1=1.2)
    changed = build_corpus([*DOCS[:-1], Document("d6", "The dog sleeps soundly.")])
    other = BM25Retriever(changed, cache_dir=tmp_path)
    assert other.cache_status == "built and cached"
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 4
    assert other.search("soundly", 3).doc_ids() == ["d6"]


def test_unreadable_index_cache_is_rebuilt(corpus, tmp_path, caplog):
    reference = _scored(BM25Retriever(corpus, cache_dir=tmp_path))
    (folder,) = list(tmp_path.iterdir())
    (folder / "data.csc.index.npy").write_bytes(b"not an array")
    rebuilt = BM25Retriever(corpus, cache_dir=tmp_path)
    assert rebuilt.cache_status == "built and cached"
    assert "unusable" in caplog.text
    assert _scored(rebuilt) == reference
    assert BM25Retriever(corpus, cache_dir=tmp_path).cache_status == "loaded from cache"


def test_rank_bm25_backend_is_not_cached(corpus, tmp_path):
    retriever = BM25Retriever(corpus, backend="rank_bm25", cache_dir=tmp_path)
    assert retriever.cache_status == "built"
    assert list(tmp_path.iterdir()) == []
