from __future__ import annotations

import dataclasses

import pytest

from reranker.errors import ConfigError
from reranker.pipeline import PipelineConfig, RerankStages
from tests.conftest import BUNDLED_MODEL, SEED_QUERY


@pytest.fixture(scope="module")
def result(seed_pipeline):
    return seed_pipeline.search(SEED_QUERY)


def test_every_stage_is_kept_in_order(result):
    assert list(result.stages) == ["bm25", "dense", "fused", "reranked"]
    assert result.before is result.stages["fused"] and result.after is result.stages["reranked"]
    assert result.reranked and result.final_stage == "reranked"


def test_each_document_has_a_rank_in_every_stage_that_returned_it(result):
    doc = result.after.hits[0].doc_id
    ranks = result.ranks(doc)
    assert set(ranks) == {"bm25", "dense", "fused", "reranked"}
    assert ranks["reranked"] == 1 and ranks["dense"] is not None


def test_fused_scores_are_explained_by_their_sources(result):
    for hit in result.before:
        assert hit.score == pytest.approx(sum(s.contribution for s in hit.sources.values()))
        for name, source in hit.sources.items():
            assert source.rank == result.stages[name].rank_of(hit.doc_id)
            assert source.contribution == pytest.approx(1 / (60 + source.rank))


def test_reranked_hits_keep_first_stage_sources_and_both_score_kinds(result):
    for hit in result.after:
        assert hit.sources == result.before.get(hit.doc_id).sources
        assert 0.0 <= hit.normalized <= 1.0 and hit.chunks
    assert "logit" in result.after.score_label and "sigmoid" in result.after.normalized_label


def test_timings_cover_every_stage_with_loads_apart(seed_pipeline, result):
    assert [t.stage for t in result.timings] == ["bm25", "dense", "fused", "reranked"]
    assert all(t.ms >= 0 and t.load_ms >= 0 for t in result.timings)
    assert {t.stage for t in seed_pipeline.startup} == {"bm25 index", "dense index"}


def test_second_query_does_not_reload_the_model(seed_pipeline):
    seed_pipeline.search("recurrent networks")
    again = seed_pipeline.search("recurrent networks hidden state")
    assert again.timing("reranked").load_ms == 0.0


def test_no_cross_encoder_stops_after_fusion(seed_pipeline):
    result = seed_pipeline.search(SEED_QUERY, cross_encoder=None)
    assert list(result.stages) == ["bm25", "dense", "fused"] and result.after is result.before


def test_depths_are_clamped_with_a_message(seed_pipeline):
    result = seed_pipeline.search(SEED_QUERY, retrieval_depth=1000, rerank_depth=1000)
    assert any("retrieval depth 1000 is larger than the 5 available" in m for m in result.messages)
    assert any("rerank depth 1000 is larger than the 5 available" in m for m in result.messages)
    assert len(result.after) == 5


def test_cascade_runs_coarse_then_fine(seed_pipeline):
    result = seed_pipeline.search(SEED_QUERY, coarse_cross_encoder=BUNDLED_MODEL, coarse_depth=4, rerank_depth=2)
    assert list(result.stages)[-2:] == ["coarse", "reranked"]
    assert len(result.stages["coarse"]) == 4 and len(result.after) == 2
    assert set(result.after.doc_ids()) <= set(result.stages["coarse"].doc_ids()[:2])


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_refused(seed_pipeline, query):
    with pytest.raises(ConfigError, match="query is empty"):
        seed_pipeline.search(query)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"aggregation": "median"}, "aggregation"),
        ({"blend": 2.0}, "blend"),
        ({"chunk_tokens": 8}, "chunk_tokens"),
        ({"chunk_tokens": 64, "chunk_overlap": 64}, "chunk_overlap"),
        ({"max_windows_per_query": 0}, "max_windows_per_query"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(seed_pipeline, overrides, field):
    with pytest.raises(ConfigError) as refused:
        seed_pipeline.search(SEED_QUERY, **overrides)
    assert refused.value.field == field


def test_empty_corpus_is_refused():
    from reranker.corpus import Corpus
    from reranker.pipeline import Pipeline

    with pytest.raises(ConfigError, match="empty"):
        Pipeline(Corpus(()), PipelineConfig(cross_encoder=None))


def test_embeddings_are_cached_and_a_corrupt_cache_is_rebuilt(seed_corpus, tmp_path):
    from reranker.dense import DenseRetriever

    first = DenseRetriever(seed_corpus, BUNDLED_MODEL, cache_dir=tmp_path)
    assert first.cache_status == "encoded"
    second = DenseRetriever(seed_corpus, BUNDLED_MODEL, cache_dir=tmp_path)
    assert second.cache_status == "loaded from cache"
    first.cache_path.write_bytes(b"garbage")
    third = DenseRetriever(seed_corpus, BUNDLED_MODEL, cache_dir=tmp_path)
    assert third.cache_status == "encoded"
    assert third.search(SEED_QUERY, 5).doc_ids() == second.search(SEED_QUERY, 5).doc_ids()


def test_hnsw_index_agrees_with_flat_on_a_small_corpus(seed_corpus, tmp_path):
    from reranker.dense import DenseRetriever

    flat = DenseRetriever(seed_corpus, BUNDLED_MODEL, cache_dir=tmp_path, index="flat")
    hnsw = DenseRetriever(seed_corpus, BUNDLED_MODEL, cache_dir=tmp_path, index="hnsw")
    assert hnsw.search(SEED_QUERY, 5).doc_ids() == flat.search(SEED_QUERY, 5).doc_ids()


def test_dense_retrieval_puts_the_definition_first(seed_pipeline):
    assert seed_pipeline.search(SEED_QUERY, cross_encoder=None).stages["dense"].doc_ids()[0] == "attention-def"


def test_a_fine_tuned_models_recommended_blend_applies_unless_set(seed_pipeline):
    from reranker.models import PROJECT_MODELS
    from reranker.project_models import recommended_blend

    project = next(iter(PROJECT_MODELS))
    weight = recommended_blend(seed_pipeline.reranker(project).loaded.resolved.path)
    assert weight is not None and 0 < weight <= 1  # the shipped card recommends a blend, chosen on dev queries
    blended = seed_pipeline.search(SEED_QUERY, cross_encoder=project)
    assert any("model card recommends" in m for m in blended.messages)
    assert "z(" in blended.stages["reranked"].score_label
    alone = seed_pipeline.search(SEED_QUERY, cross_encoder=project, blend=0.0)
    assert not any("model card recommends" in m for m in alone.messages)
    assert "z(" not in alone.stages["reranked"].score_label
    # A model without a card is never blended by default.
    plain = seed_pipeline.search(SEED_QUERY, cross_encoder=BUNDLED_MODEL)
    assert "z(" not in plain.stages["reranked"].score_label


def test_large_corpora_keep_their_bm25_index_on_disk(seed_corpus, tmp_path, monkeypatch):
    import reranker.pipeline as pipeline_module

    config = PipelineConfig(cross_encoder=None)
    small = pipeline_module.Pipeline(seed_corpus, config, cache_dir=str(tmp_path))
    assert not (tmp_path / "bm25").exists()  # below the threshold: rebuilt in milliseconds instead
    assert "index built" in small.startup[0].detail

    monkeypatch.setattr(pipeline_module, "BM25_CACHE_MIN_DOCUMENTS", 1)
    first = pipeline_module.Pipeline(seed_corpus, config, cache_dir=str(tmp_path))
    second = pipeline_module.Pipeline(seed_corpus, config, cache_dir=str(tmp_path))
    assert [t.detail.split("index ")[-1] for t in (first.startup[0], second.startup[0])] == [
        "built and cached",
        "loaded from cache",
    ]
    assert len(list((tmp_path / "bm25").iterdir())) == 1
    assert second.search(SEED_QUERY).stages["bm25"].doc_ids() == small.search(SEED_QUERY).stages["bm25"].doc_ids()


def _hits(ranked):
    return [(h.doc_id, h.rank, h.score, h.normalized, h.chunks) for h in ranked]


def test_rerank_runs_the_stages_search_runs_after_fusion(seed_pipeline, seed_corpus, result):
    """`rerank` on the fused list reproduces `search`'s reranked list; a bare `RerankStages` (no indexes) too."""
    from reranker.pipeline import RerankStages

    again = seed_pipeline.rerank(SEED_QUERY, result.before)
    assert list(again.stages) == ["fused", "reranked"] and again.before is result.before
    assert _hits(again.after) == _hits(result.after)
    bare = RerankStages(seed_corpus, PipelineConfig(cross_encoder=BUNDLED_MODEL, rerank_depth=5))
    assert not hasattr(bare, "search")
    assert _hits(bare.rerank(SEED_QUERY, result.before).after) == _hits(result.after)
    # The blend and the cascade follow the same path.
    blended = seed_pipeline.search(SEED_QUERY, blend=0.5, coarse_cross_encoder=BUNDLED_MODEL, coarse_depth=4)
    assert list(blended.stages)[-2:] == ["coarse", "reranked"]
    rerun = bare.rerank(SEED_QUERY, blended.before, blend=0.5, coarse_cross_encoder=BUNDLED_MODEL, coarse_depth=4)
    assert _hits(rerun.stages["coarse"]) == _hits(blended.stages["coarse"])
    assert _hits(rerun.after) == _hits(blended.after)


def test_rerank_blends_with_the_given_lists_scores(seed_pipeline, result):
    from tests.support import ranked

    ids = result.before.doc_ids()
    agreeing = seed_pipeline.rerank(SEED_QUERY, ranked("run", ids), blend=1.0)
    assert agreeing.after.doc_ids() == ids  # all weight on the run's own scores: its order
    assert "run" in agreeing.stages and agreeing.before.stage == "run" and agreeing.reranked
    flipped = seed_pipeline.rerank(SEED_QUERY, ranked("run", ids, [float(i) for i in range(len(ids))]), blend=1.0)
    assert flipped.after.doc_ids() == ids[::-1]


def test_rerank_refuses_unknown_documents_and_stage_names(seed_pipeline):
    from tests.support import ranked

    with pytest.raises(ConfigError, match=r"corpus lacks, e\.g\. 'nope'"):
        seed_pipeline.rerank(SEED_QUERY, ranked("run", ["bert", "nope"]))
    with pytest.raises(ConfigError, match="cannot be named 'reranked'"):
        seed_pipeline.rerank(SEED_QUERY, ranked("reranked", ["bert"]))
    off = seed_pipeline.rerank(SEED_QUERY, ranked("run", ["bert", "rnn"]), rerank_depth=0)
    assert list(off.stages) == ["run"] and not off.reranked
    assert "the results are the run list" in off.messages[0]


def test_each_pipeline_owns_a_bounded_score_cache_its_rerankers_share(seed_pipeline, seed_corpus, result):
    """Scores are the pipeline's, as its corpus is: another pipeline over the same texts scores them itself."""
    spec = seed_pipeline.config.cross_encoder
    assert seed_pipeline.reranker(spec).cache is seed_pipeline.score_cache
    other_settings = dataclasses.replace(seed_pipeline.config, chunk_tokens=64, chunk_overlap=16)
    assert seed_pipeline.reranker(spec, other_settings).cache is seed_pipeline.score_cache
    other = RerankStages(seed_corpus, seed_pipeline.config)
    assert other.score_cache is not seed_pipeline.score_cache and len(other.score_cache) == 0
    again = other.rerank(result.query, result.before)
    assert again.after.doc_ids() == result.after.doc_ids()
    scored = len(other.score_cache)
    assert scored == sum(len(h.chunks) for h in again.stages["reranked"].hits) > 0
    other.rerank(result.query, result.before)
    assert len(other.score_cache) == scored  # the second time every pair came from its cache
    small = RerankStages(seed_corpus, seed_pipeline.config, score_cache_entries=2)
    small.rerank(result.query, result.before)
    assert small.score_cache.max_entries == 2 and len(small.score_cache) == 2


def test_a_pipeline_keeps_only_its_latest_rerankers(seed_corpus, monkeypatch):
    """The page builds a reranker per setting a visitor tries: the oldest go, and their scores stay in the pipeline's."""
    import reranker.pipeline

    monkeypatch.setattr(reranker.pipeline, "MAX_RERANKERS", 2)
    stages = RerankStages(seed_corpus, PipelineConfig(cross_encoder=BUNDLED_MODEL))
    configs = [dataclasses.replace(stages.config, batch_size=size) for size in (4, 8, 16)]
    first, second, third = (stages.reranker(BUNDLED_MODEL, config) for config in configs)
    assert stages.reranker(BUNDLED_MODEL, configs[2]) is third and stages.reranker(BUNDLED_MODEL, configs[1]) is second
    assert stages.reranker(BUNDLED_MODEL, configs[0]) is not first  # forgotten, built again
    assert {r.cache for r in (first, second, third)} == {stages.score_cache}
