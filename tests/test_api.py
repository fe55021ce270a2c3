"""The public Python API: `reranker.Reranker`, `reranker.rerank`, `RerankResult`.

The bundled all-MiniLM-L6-v2 loaded as a CrossEncoder has an untrained head, so these tests check
mechanics (order follows the scores, windows, ids, top_n, timings, errors), never quality; scores
are compared with ones computed directly from the model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import BUNDLED_MODEL, SEED_DOCUMENTS, SEED_QUERY

import reranker
import reranker.api as api
from reranker import Document, Reranker, RerankResult, rerank
from reranker.errors import ConfigError, ModelUnavailableError
from reranker.models import DEFAULT_CROSS_ENCODER, PROJECT_MODELS
from reranker.pipeline import resolve_cross_encoder_spec

PASSAGES = [doc.text for doc in SEED_DOCUMENTS]


@pytest.fixture(scope="module")
def short_reranker() -> Reranker:
    # fp32, so scores can be compared exactly with the model's own fp32 output.
    return Reranker(BUNDLED_MODEL, precision="fp32")


@pytest.fixture(scope="module")
def windowed_reranker() -> Reranker:
    return Reranker(BUNDLED_MODEL, chunk_tokens=24, chunk_overlap=6, precision="fp32")


def direct_logits(reranker_: Reranker, pairs: list[tuple[str, str]]) -> np.ndarray:
    """fp32 logits straight from the loaded sentence-transformers model, bypassing the API and its cache."""
    import torch

    with torch.inference_mode():
        logits = reranker_._engine.model.predict(pairs, activation_fn=torch.nn.Identity(), show_progress_bar=False)
    return np.asarray(logits, dtype=np.float64).reshape(-1)


def test_public_surface_is_exported_from_the_package():
    from reranker import corpus, pipeline, types

    homes = {"Reranker": api, "RerankResult": api, "rerank": api, "Pipeline": pipeline, "PipelineConfig": pipeline,
             "load_dataset": corpus, "Hit": types, "RankedList": types}
    for name, home in homes.items():
        assert name in reranker.__all__
        assert getattr(reranker, name) is getattr(home, name)  # the package's name is the module's object


def test_seed_example_ranks_all_five_passages_by_their_scores(short_reranker):
    result = short_reranker.rerank(SEED_QUERY, PASSAGES)

    assert isinstance(result, RerankResult)
    assert result.model == BUNDLED_MODEL
    assert sorted(hit.doc_id for hit in result) == ["0", "1", "2", "3", "4"]
    assert [hit.rank for hit in result] == [1, 2, 3, 4, 5]
    scores = [hit.score for hit in result]
    assert scores == sorted(scores, reverse=True)

    expected = direct_logits(short_reranker, [(SEED_QUERY, text) for text in PASSAGES])
    for hit in result:
        position = result.position(hit)
        assert position == int(hit.doc_id)
        assert result.document(hit).text == PASSAGES[position]
        assert hit.score == pytest.approx(float(expected[position]), abs=1e-4)
        assert hit.normalized == pytest.approx(1 / (1 + math.exp(-hit.score)))
        assert len(hit.chunks) == 1 and hit.deciding_chunk == 0 and hit.truncated_at is None
        assert hit.stage == "reranked"
    assert result.ranked.score_label.startswith("cross-encoder logit")


def test_top_n_keeps_the_best_of_the_full_ranking(short_reranker):
    full = short_reranker.rerank(SEED_QUERY, PASSAGES)
    top = short_reranker.rerank(SEED_QUERY, PASSAGES, top_n=2)
    assert len(top) == 2
    assert top.ranked.doc_ids() == full.ranked.doc_ids()[:2]
    assert len(top.documents) == 5  # every input stays addressable

    default_top = Reranker(BUNDLED_MODEL, top_n=3, precision="fp32").rerank(SEED_QUERY, PASSAGES)
    assert default_top.ranked.doc_ids() == full.ranked.doc_ids()[:3]


def test_documents_keep_their_ids_and_titles_are_scored(short_reranker):
    result = short_reranker.rerank(SEED_QUERY, list(SEED_DOCUMENTS))
    assert {hit.doc_id for hit in result} == {doc.id for doc in SEED_DOCUMENTS}
    expected = direct_logits(short_reranker, [(SEED_QUERY, doc.full_text) for doc in SEED_DOCUMENTS])
    for hit in result:
        assert result.document(hit) == SEED_DOCUMENTS[result.position(hit)]
        assert hit.score == pytest.approx(float(expected[result.position(hit)]), abs=1e-4)


def test_long_text_is_scored_window_by_window(windowed_reranker):
    long_doc = Document("long", " ".join(PASSAGES), title="Everything")
    result = windowed_reranker.rerank(SEED_QUERY, [long_doc, PASSAGES[3]])

    hit = result.ranked.get("long")
    assert len(hit.chunks) > 3
    assert hit.score == max(chunk.raw for chunk in hit.chunks)
    assert hit.chunks[hit.deciding_chunk].raw == hit.score
    text = long_doc.full_text
    assert hit.chunks[0].start == 0 and hit.chunks[-1].end == len(text.rstrip())
    for before, after in zip(hit.chunks, hit.chunks[1:], strict=False):
        assert after.token_start == before.token_end - 6  # the overlap
    windows = [text[chunk.start : chunk.end] for chunk in hit.chunks]
    assert result.chunk_text(hit) == windows[hit.deciding_chunk]
    assert result.chunk_text(hit, 0) == windows[0]
    expected = direct_logits(windowed_reranker, [(SEED_QUERY, window) for window in windows])
    assert [chunk.raw for chunk in hit.chunks] == pytest.approx(expected.tolist(), abs=1e-4)
    with pytest.raises(ConfigError, match="no window 99"):
        result.chunk_text(hit, 99)


def test_default_precision_ranks_by_its_own_scores():
    """precision="auto" may run fp16/bf16: scores move in the last digits, the mechanics stay."""
    result = Reranker(BUNDLED_MODEL, top_n=3).rerank(SEED_QUERY, PASSAGES)
    assert [hit.rank for hit in result] == [1, 2, 3]
    assert [hit.score for hit in result] == sorted((hit.score for hit in result), reverse=True)
    assert all(math.isfinite(hit.score) for hit in result)


def test_mean_aggregation_averages_the_windows():
    long_doc = Document("long", " ".join(PASSAGES))
    mean = Reranker(BUNDLED_MODEL, chunk_tokens=24, chunk_overlap=6, aggregation="mean", precision="fp32")
    result = mean.rerank(SEED_QUERY, [long_doc])
    hit = result.hits[0]
    assert hit.score == pytest.approx(sum(c.raw for c in hit.chunks) / len(hit.chunks))


def test_timing_reports_the_call(short_reranker):
    result = short_reranker.rerank("how do transformers weigh tokens?", PASSAGES, top_n=1)
    assert result.timing.stage == "reranked"
    assert result.latency_ms == result.timing.ms > 0
    assert BUNDLED_MODEL in result.timing.detail and "5 texts" in result.timing.detail
    assert result.pairs_scored + result.pairs_cached == 5
    again = short_reranker.rerank("how do transformers weigh tokens?", PASSAGES, top_n=1)
    assert again.pairs_cached == 5 and again.pairs_scored == 0
    assert again.timing.load_ms == 0.0


def test_rerank_function_matches_the_class(short_reranker):
    one_call = rerank(SEED_QUERY, PASSAGES, model=BUNDLED_MODEL, top_n=3, precision="fp32")
    assert one_call.ranked.doc_ids() == short_reranker.rerank(SEED_QUERY, PASSAGES, top_n=3).ranked.doc_ids()


def test_empty_list_gives_an_empty_result(short_reranker):
    result = short_reranker.rerank(SEED_QUERY, [])
    assert len(result) == 0 and result.latency_ms == 0.0


@pytest.mark.parametrize(
    ("query", "texts", "top_n", "message"),
    [
        ("   ", PASSAGES, None, "query is empty"),
        (SEED_QUERY, "one long string", None, "not a single str"),
        (SEED_QUERY, ["fine", 3], None, r"texts\[1\] is a int"),
        (SEED_QUERY, [Document("a", "x"), Document("a", "y")], None, "repeats the document id 'a'"),
        (SEED_QUERY, PASSAGES, 0, "top_n must be"),
    ],
)
def test_bad_input_is_refused_with_the_fix(short_reranker, query, texts, top_n, message):
    with pytest.raises(ConfigError, match=message):
        short_reranker.rerank(query, texts, top_n=top_n)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": "none"}, "model"),
        ({"model": ""}, "model"),
        ({"aggregation": "median"}, "aggregation"),
        ({"chunk_tokens": 8}, "chunk_tokens"),
        ({"chunk_tokens": 64, "chunk_overlap": 64}, "chunk_overlap"),
        ({"top_n": -1}, "top_n"),
        ({"precision": "int8"}, "precision"),
        ({"batch_size": 0}, "batch_size"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(kwargs, field):
    with pytest.raises(ConfigError) as refused:
        Reranker(**{"model": BUNDLED_MODEL, **kwargs})
    assert refused.value.field == field


def test_unknown_model_offline_names_what_was_tried(tmp_path):
    with pytest.raises(ModelUnavailableError, match="local directory"):
        Reranker(str(tmp_path / "no-such-model"))


def test_auto_without_any_cross_encoder_says_how_to_fix(monkeypatch):
    monkeypatch.setattr(api, "resolve_cross_encoder_spec", lambda spec: None)
    with pytest.raises(ModelUnavailableError, match="Fix: pass model="):
        Reranker("auto")


def test_auto_follows_the_pipelines_resolution(offline_auto):
    """ "auto" is the pipeline's choice: the hub default when cached, else a registered project model."""
    expected = resolve_cross_encoder_spec("auto")
    assert expected in PROJECT_MODELS or expected == DEFAULT_CROSS_ENCODER
    result = Reranker("auto", top_n=2).rerank(SEED_QUERY, PASSAGES)
    assert result.model == expected and len(result) == 2


def test_each_reranker_owns_its_score_cache_and_cache_false_has_none(short_reranker):
    query = "which passage defines attention?"
    first = short_reranker.rerank(query, PASSAGES)
    other = Reranker(BUNDLED_MODEL, precision="fp32")
    assert other.score_cache is not short_reranker.score_cache and len(other.score_cache) == 0
    fresh = other.rerank(query, PASSAGES)
    assert (fresh.pairs_scored, fresh.pairs_cached) == (5, 0)  # nothing read from the other reranker's scores
    assert [h.score for h in fresh] == [h.score for h in first]
    uncached = Reranker(BUNDLED_MODEL, precision="fp32", cache=False)
    assert uncached.score_cache is None
    assert uncached.rerank(query, PASSAGES).pairs_scored == uncached.rerank(query, PASSAGES).pairs_scored == 5
