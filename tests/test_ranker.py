"""The ranker interface: a ranker that is not a cross-encoder runs as the pipeline's reranking stage, in a
Compare/Evaluate configuration and under an engine, named only by its `ranker:MODULE:FACTORY` spec."""

from __future__ import annotations

import math

import pytest
from conftest import BUNDLED_MODEL

from reranker.corpus import build_corpus
from reranker.engines.local import LocalEngine
from reranker.errors import ConfigError
from reranker.evaluation.analysis import evaluate_configurations, parse_configurations
from reranker.pipeline import Pipeline, PipelineConfig
from reranker.ranker import Ranker, load_ranker
from reranker.types import Document
from tests.rankers import SPEC, CandidateBM25

TEXTS = {
    "cat1": "cats are small furry animals that purr and sleep",
    "cat2": "a cat chased the mouse around the house",
    "cat3": "kittens are young cats that play a lot; young cats sleep a lot",
    "dog1": "dogs bark and are loyal pets that love walks",
    "dog2": "puppies are young dogs that need training",
    "fin1": "the stock market fell sharply today as investors sold",
}
QRELS = {"q1": {"cat3": 1}, "q2": {"dog1": 1}}
QUERIES = {"q1": "young cats", "q2": "loyal dog"}


@pytest.fixture(autouse=True)
def allow_the_test_ranker(monkeypatch):
    monkeypatch.setenv("RERANK_LENS_RANKERS", "tests.rankers:CandidateBM25, no_such_module:*")


@pytest.fixture(scope="module")
def pipeline():
    corpus = build_corpus([Document(doc_id, text) for doc_id, text in TEXTS.items()])
    return Pipeline(corpus, PipelineConfig(bi_encoder=BUNDLED_MODEL, cross_encoder=SPEC, retrieval_depth=6))


def test_the_test_ranker_is_a_ranker_and_scores_by_hand():
    ranker = load_ranker(SPEC)
    assert isinstance(ranker, Ranker) and isinstance(ranker, CandidateBM25)
    # One term, two texts of equal length, only the first contains it: idf = log(1 + 1.5 / 1.5) = log 2,
    # tf = 1 at average length: 1 * 2.2 / (1 + 1.2) = 1.
    assert ranker.score("cats", ["cats purr", "dogs bark"]) == pytest.approx([math.log(2), 0.0])


def test_the_pipeline_reranks_with_it(pipeline):
    result = pipeline.search("young cats", rerank_depth=4)
    fused = result.stages["fused"].doc_ids()[:4]
    reranked = result.stages["reranked"]
    expected_scores = CandidateBM25().score("young cats", [TEXTS[d] for d in fused])
    expected = [d for _, d in sorted(zip(expected_scores, fused, strict=True), key=lambda p: -p[0])]
    assert reranked.doc_ids() == expected and reranked.doc_ids()[0] == "cat3"
    assert [h.rank for h in reranked.hits] == [1, 2, 3, 4] and {h.stage for h in reranked.hits} == {"reranked"}
    assert all(h.sources for h in reranked.hits)  # the first-stage ranks travel with each hit, as for cross-encoders
    assert result.timing("reranked").detail.startswith(SPEC)


def test_evaluate_and_compare_run_it_as_a_configuration(pipeline):
    configs = parse_configurations(["fused", f"lex={SPEC}@rerank_depth=6"])
    report = evaluate_configurations(pipeline, QUERIES, QRELS, configs, engine=LocalEngine())
    lexical = report.get("lex")
    assert lexical.ok and lexical.model == SPEC
    assert lexical.run["q1"] and max(lexical.run["q1"], key=lexical.run["q1"].get) == "cat3"
    assert 0.0 < lexical.means["ndcg@10"] <= 1.0


def test_a_bad_ranker_spec_names_the_setting(pipeline):
    for spec in ("ranker:tests.rankers", "ranker:no_such_module:Ranker", "ranker:tests.rankers:SPEC"):
        with pytest.raises(ConfigError) as refused:
            pipeline.search("young cats", cross_encoder=spec)
        assert refused.value.field == "cross_encoder"


def test_a_ranker_not_listed_is_refused_before_its_module_is_imported(pipeline, monkeypatch):
    import sys

    monkeypatch.delenv("RERANK_LENS_RANKERS")
    monkeypatch.delitem(sys.modules, "tests.rankers_unlisted", raising=False)
    for spec in ("ranker:os:abort", "ranker:tests.rankers_unlisted:Anything"):  # e.g. typed in the page's model box
        with pytest.raises(ConfigError) as refused:
            pipeline.search("young cats", cross_encoder=spec)
        assert refused.value.field == "cross_encoder" and "RERANK_LENS_RANKERS" in str(refused.value)
    with pytest.raises(ConfigError):
        load_ranker(SPEC)
    assert "tests.rankers_unlisted" not in sys.modules  # refused before any import
    monkeypatch.setenv("RERANK_LENS_RANKERS", "tests.rankers:*")
    assert isinstance(load_ranker(SPEC), Ranker)
