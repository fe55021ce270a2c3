"""Cross-encoder mechanics on real weights (the bundled MiniLM with an untrained head): batching,
chunking, aggregation, ordering and caching. Quality is never asserted here."""

from __future__ import annotations

import pytest

from reranker.corpus import build_corpus
from reranker.cross_encoder import NORMALIZED_LABEL, RAW_LABEL, CrossEncoderReranker, ScoreCache, sigmoid
from reranker.types import Document, Hit, RankedList
from tests.conftest import BUNDLED_MODEL, SEED_QUERY

LONG_TEXT = " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(160))


@pytest.fixture(scope="module")
def reranker():
    import torch

    torch.manual_seed(0)
    # fp32 pinned: the comparison with plain predict must not depend on what `auto` picks on this CPU.
    # No window cap: the long document below is windowed end to end (caps: tests/test_guards.py).
    return CrossEncoderReranker(
        BUNDLED_MODEL,
        max_length=128,
        chunk_tokens=64,
        chunk_overlap=16,
        cache=ScoreCache(),
        precision="fp32",
        max_windows_per_document=None,
    )


def test_scores_match_plain_predict_and_are_labelled(reranker, seed_corpus):
    import torch

    docs = list(seed_corpus.documents)
    scores, messages, scored, cached = reranker.score_documents(SEED_QUERY, docs)
    direct = reranker.model.predict(
        [(SEED_QUERY, d.full_text) for d in docs], activation_fn=torch.nn.Identity(), batch_size=2
    )
    assert [s.raw for s in scores] == pytest.approx(list(direct), abs=1e-4)
    assert all(s.normalized == pytest.approx(sigmoid(s.raw)) for s in scores)
    assert messages == [] and scored == len(docs) and cached == 0


def test_long_document_is_windowed_with_spans_and_truncation_point(reranker):
    doc = Document("long", LONG_TEXT, "Long")
    [score], _, scored, _ = reranker.score_documents("topic 3", [doc])
    assert len(score.chunks) > 3 and scored == len(score.chunks)
    text = doc.full_text
    for previous, chunk in zip(score.chunks, score.chunks[1:], strict=False):
        assert chunk.token_start == previous.token_end - 16  # overlap in tokens
        assert previous.start < chunk.start < previous.end  # overlapping character spans
    assert score.chunks[-1].end == len(text)
    assert score.raw == max(c.raw for c in score.chunks)
    assert score.chunks[score.deciding_chunk].raw == score.raw
    assert score.truncated_at is not None and 0 < score.truncated_at < len(text)
    query_tokens = len(reranker.tokenizer("topic 3", add_special_tokens=False)["input_ids"])
    assert all(c.token_end - c.token_start + query_tokens + 3 <= 128 for c in score.chunks)


def test_aggregation_first_and_mean(seed_corpus):
    doc = Document("long", LONG_TEXT)
    kwargs = dict(max_length=128, chunk_tokens=64, chunk_overlap=16, cache=ScoreCache())
    first = CrossEncoderReranker(BUNDLED_MODEL, aggregation="first", **kwargs).score_documents("topic", [doc])[0][0]
    mean = CrossEncoderReranker(BUNDLED_MODEL, aggregation="mean", **kwargs).score_documents("topic", [doc])[0][0]
    assert first.raw == pytest.approx(first.chunks[0].raw)
    assert mean.raw == pytest.approx(sum(c.raw for c in mean.chunks) / len(mean.chunks))


def test_cache_means_no_pair_is_scored_twice(reranker, seed_corpus):
    docs = list(seed_corpus.documents)
    reranker.score_documents("a fresh query about caching", docs)
    again = reranker.score_documents("a fresh query about caching", docs)
    assert again[2] == 0 and again[3] == len(docs)


def test_rerank_orders_by_score_and_keeps_first_stage_sources(reranker, seed_corpus):
    candidates = RankedList("fused", tuple(Hit(d.id, r, 1.0 / r, "fused") for r, d in enumerate(seed_corpus.documents, 1)), "x")
    output = reranker.rerank(SEED_QUERY, candidates, seed_corpus, depth=4)
    ranked = output.ranked
    assert len(ranked) == 4 and ranked.score_label == RAW_LABEL and ranked.normalized_label == NORMALIZED_LABEL
    assert [h.score for h in ranked] == sorted((h.score for h in ranked), reverse=True)
    assert [h.rank for h in ranked] == [1, 2, 3, 4]
    assert "attention-general" not in ranked.doc_ids()  # beyond depth 4


def test_overlong_query_is_truncated_with_a_message(reranker):
    query = "attention " * 400
    scores, messages, _, _ = reranker.score_documents(query, [Document("d", "short text")])
    assert len(scores) == 1 and "truncated" in messages[0]


def test_rerank_depth_covers_a_corpus_built_inline():
    corpus = build_corpus([Document("x", "alpha"), Document("y", "beta")])
    r = CrossEncoderReranker(BUNDLED_MODEL, cache=None)
    candidates = RankedList("fused", (Hit("x", 1, 1.0, "fused"), Hit("y", 2, 0.5, "fused")), "x")
    assert sorted(r.rerank("alpha", candidates, corpus, depth=10).ranked.doc_ids()) == ["x", "y"]


def test_fp32_cpu_passes_stay_within_the_token_budget_with_the_same_scores(reranker, seed_corpus, monkeypatch):
    import numpy as np

    from reranker import cross_encoder

    if reranker.device != "cpu":
        pytest.skip("passes by token budget apply on a CPU")
    _, _, _, pair_ids = reranker._plan(SEED_QUERY, list(seed_corpus.documents))
    whole = reranker.model_scores(None, pair_ids, precision="fp32", batch_size=len(pair_ids))
    budget = 2 * max(len(q) + len(d) for q, d in pair_ids)  # about two pairs per pass
    monkeypatch.setattr(cross_encoder, "CPU_PASS_TOKENS", budget)
    widths, passes = _pass_widths(reranker, pair_ids, "fp32", monkeypatch)
    assert len(widths) >= len(pair_ids) // 2
    assert max(widths) <= budget + 2 * reranker.tokenizer.num_special_tokens_to_add(pair=True)
    np.testing.assert_allclose(passes, whole, atol=1e-5)
    # Reduced precision (what `auto` picks on AMX) keeps whole batches: it was measured that way there.
    widths, _ = _pass_widths(reranker, pair_ids, "bf16", monkeypatch)
    assert len(widths) == 1


def _pass_widths(reranker, pair_ids, precision, monkeypatch):
    """The padded token count of each forward pass `model_scores` makes in `precision`, and its scores."""
    from reranker import speed

    model = speed.weights_in(reranker.model, reranker._model_key, precision)
    widths = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda features: widths.append(features["input_ids"].numel()) or original(features))
    scores = reranker.model_scores(None, pair_ids, precision=precision, batch_size=32)
    return widths, scores


def test_a_reranker_owns_its_score_cache_unless_given_one_or_none(reranker, seed_corpus):
    docs = list(seed_corpus.documents)[:2]
    alone = CrossEncoderReranker(BUNDLED_MODEL, max_length=128, precision="fp32")
    assert isinstance(alone.cache, ScoreCache) and alone.cache is not reranker.cache
    assert CrossEncoderReranker(BUNDLED_MODEL, max_length=128, precision="fp32").cache is not alone.cache
    assert alone.score_documents(SEED_QUERY, docs)[2:] == (2, 0)  # its own, empty: both pairs scored
    assert alone.score_documents(SEED_QUERY, docs)[2:] == (0, 2)
    shared = ScoreCache()
    one = CrossEncoderReranker(BUNDLED_MODEL, max_length=128, precision="fp32", cache=shared)
    two = CrossEncoderReranker(BUNDLED_MODEL, max_length=128, precision="fp32", chunk_tokens=500, cache=shared)
    assert one.score_documents(SEED_QUERY, docs)[2:] == (2, 0) and two.score_documents(SEED_QUERY, docs)[2:] == (0, 2)
    off = CrossEncoderReranker(BUNDLED_MODEL, max_length=128, precision="fp32", cache=None)
    assert off.cache is None and off.score_documents(SEED_QUERY, docs)[2:] == off.score_documents(SEED_QUERY, docs)[2:] == (2, 0)
