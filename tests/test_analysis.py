"""Error analysis: configurations, shared passes, significance against scipy, hurt flags, agreement."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import BUNDLED_MODEL

from reranker.corpus import build_corpus
from reranker.errors import ConfigError
from reranker.evaluation.analysis import (
    Configuration,
    EvaluationCancelled,
    ReportCache,
    agreement,
    evaluate_configurations,
    helped_and_hurt,
    hurt_documents,
    model_agreement,
    parse_configuration,
    parse_configurations,
    query_deltas,
    ranking_changes,
    run_configurations,
)
from reranker.evaluation.metrics import evaluate_run, stage_run
from reranker.types import Document, Hit, PipelineResult, RankedList

TEXTS = {
    "cat1": "cats are small furry animals that purr and sleep",
    "dog1": "dogs bark and are loyal pets that love walks",
    "fin1": "the stock market fell sharply today as investors sold",
    "py1": "python is a programming language with readable syntax",
    "cat2": "a cat chased the mouse around the house",
    "fin2": "bond yields rose while stocks fell on inflation news",
    "snake": "snakes are reptiles and pythons are large constricting snakes",
    "cat3": "kittens are young cats that play a lot",
    "dog2": "puppies are young dogs that need training",
    "rust": "programming in rust is fast and memory safe",
}
QUERIES = {"q1": "young cats", "q2": "stocks falling", "q3": "python programming language", "q4": "loyal dog"}
QRELS = {"q1": {"cat3": 2, "cat1": 1}, "q2": {"fin1": 1, "fin2": 2}, "q3": {"py1": 2}, "q4": {"dog1": 2, "dog2": 1}}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from reranker.pipeline import Pipeline, PipelineConfig

    corpus = build_corpus([Document(k, v) for k, v in TEXTS.items()], name="pets")
    config = PipelineConfig(cross_encoder=None, retrieval_depth=10, rerank_depth=6, top_n=3)
    return Pipeline(corpus, config, cache_dir=str(tmp_path_factory.mktemp("emb")))


@pytest.fixture(scope="module")
def report(pipeline):
    configs = parse_configurations(["bm25,dense", "fused", f"mini=rerank:{BUNDLED_MODEL}"])
    return evaluate_configurations(pipeline, QUERIES, QRELS, configs, baseline="fused", dataset="pets", split="test")


def test_parse_configuration_variants():
    assert parse_configuration("bm25") == Configuration("bm25", "bm25", spec="bm25")
    auto = parse_configuration("auto")
    assert (auto.stage, auto.cross_encoder) == ("reranked", "auto")
    named = parse_configuration("A=rerank:org/model@rerank_depth=20@blend=0.25")
    assert named.name == "A" and named.cross_encoder == "org/model"
    assert dict(named.settings) == {"rerank_depth": 20, "blend": 0.25}
    with pytest.warns(DeprecationWarning, match="now @rerank_depth"):  # the old names, for one release
        old = parse_configuration("A=rerank:org/model@depth=20@interpolation=0.25")
    assert old == dataclasses.replace(named, spec=old.spec)
    cascade = parse_configuration("cascade:small+big")
    assert (cascade.coarse_cross_encoder, cascade.cross_encoder) == ("small", "big")
    assert parse_configuration("./models/ce").cross_encoder == "./models/ce"
    assert [c.name for c in parse_configurations(["bm25,fused", "auto"])] == ["bm25", "fused", "auto"]


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("", "empty configuration"),
        ("cascade:onlyone", r"COARSE\+FINE"),
        ("rerank:none", "name a cross-encoder"),
        ("auto@colour=red", "unknown setting"),
        ("auto@rerank_depth=deep", "needs a int"),
        ("=bm25", "NAME=SPEC"),
    ],
)
def test_bad_configurations_say_how_to_fix(bad, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_configurations([bad]) if bad else parse_configuration(bad)


def test_duplicate_names_are_refused():
    with pytest.raises(ConfigError, match="must differ"):
        parse_configurations(["fused", "fused"])


def test_first_stage_configurations_share_the_reranking_pass(pipeline, monkeypatch):
    calls = []
    original = pipeline.search

    def counting(query, **overrides):
        calls.append(overrides.get("cross_encoder"))
        return original(query, **overrides)

    monkeypatch.setattr(pipeline, "search", counting)
    configs = parse_configurations([f"bm25,fused,mini=rerank:{BUNDLED_MODEL}"])
    out = run_configurations(pipeline, QUERIES, configs)
    assert calls == [BUNDLED_MODEL] * len(QUERIES)  # one pass serves all three
    assert out["bm25"].results is out["mini"].results
    assert out["mini"].model == BUNDLED_MODEL and all(run.error is None for run in out.values())


def test_means_match_the_core_evaluation(report):
    for name, stage in [("bm25", "bm25"), ("dense", "dense"), ("fused", "fused"), ("mini", "reranked")]:
        result = report.get(name)
        expected = evaluate_run(QRELS, stage_run(result.results, stage), ("ndcg@10", "mrr@10", "recall@100"))
        for metric, value in expected.items():
            assert result.means[metric] == pytest.approx(value)


def test_significance_is_a_paired_t_test_against_the_baseline(report):
    from scipy.stats import ttest_rel

    sig = report.significance_for("mini", "ndcg@10")
    base = [report.get("fused").per_query[q]["ndcg@10"] for q in QUERIES]
    mine = [report.get("mini").per_query[q]["ndcg@10"] for q in QUERIES]
    expected = ttest_rel(base, mine).pvalue
    if expected != expected:  # identical per-query scores: no evidence of a difference
        expected = 1.0
    assert sig.p_value == pytest.approx(expected, rel=1e-6)
    assert sig.significant == (sig.p_value < report.max_p)
    assert sig.delta == pytest.approx(sum(mine) / 4 - sum(base) / 4)
    assert sig.wins + sig.ties + sig.losses == len(QUERIES)
    assert report.significance_for("fused", "ndcg@10") is None  # the baseline is not tested against itself


def test_a_configuration_that_cannot_load_reports_why_and_the_others_run(pipeline):
    configs = parse_configurations(["fused", "broken=rerank:/no/such/model-dir"])
    report = evaluate_configurations(pipeline, QUERIES, QRELS, configs)
    broken = report.get("broken")
    assert not broken.ok and "/no/such/model-dir" in broken.error
    assert report.get("fused").ok and report.get("fused").means["ndcg@10"] > 0
    assert report.significance == ()


def test_no_judged_queries_explains_what_is_missing(pipeline):
    with pytest.raises(ConfigError, match="relevant judgment"):
        evaluate_configurations(pipeline, QUERIES, {"q1": {"cat1": 0}}, parse_configurations(["fused"]))


def test_unknown_baseline_is_refused(pipeline):
    with pytest.raises(ConfigError, match="baseline"):
        evaluate_configurations(pipeline, QUERIES, QRELS, parse_configurations(["fused"]), baseline="nope")


def test_cancel_stops_between_queries(pipeline):
    seen = []
    with pytest.raises(EvaluationCancelled, match="stopped after 2"):
        run_configurations(
            pipeline, QUERIES, parse_configurations(["fused"]), progress=lambda d, t, _: seen.append((d, t)),
            should_stop=lambda: len(seen) >= 2,
        )
    assert seen == [(1, 4), (2, 4)]


def _ranked(stage, ids):
    return RankedList(stage, tuple(Hit(d, r, float(-r), stage) for r, d in enumerate(ids, start=1)), "score")


def _result(fused, reranked, top_n=3):
    stages = {"fused": _ranked("fused", fused), "reranked": _ranked("reranked", reranked)}
    return PipelineResult("q", stages, (), (), top_n)


def test_hurt_documents_are_relevant_ones_pushed_out_of_the_top_n():
    result = _result(["a", "b", "c", "d", "e"], ["d", "e", "a", "c", "b"])
    hurt = hurt_documents(result, {"b": 2, "c": 1, "a": 1, "e": 0}, top_n=3)
    assert [(h.doc_id, h.grade, h.before, h.after) for h in hurt] == [("b", 2, 2, 5), ("c", 1, 3, 4)]
    assert hurt_documents(_result(["a", "b"], ["b", "a"]), {"a": 1}) == ()
    # Past the rerank depth nothing was scored: not the reranker's doing, so not flagged.
    assert hurt_documents(_result(["a", "b", "c"], ["b", "a"]), {"c": 2}) == ()


def test_query_deltas_and_helped_and_hurt(report):
    deltas = query_deltas(report, "mini")
    assert {d.query_id for d in deltas} == set(QUERIES)
    fused = report.get("fused").per_query
    for d in deltas:
        assert d.before == pytest.approx(fused[d.query_id]["ndcg@10"])
        assert d.after == pytest.approx(report.get("mini").per_query[d.query_id]["ndcg@10"])
    helped, hurt = helped_and_hurt(deltas)
    assert all(d.delta > 0 for d in helped) and all(d.delta < 0 for d in hurt)
    assert [d.delta for d in hurt] == sorted(d.delta for d in hurt)
    with pytest.raises(ConfigError, match="does not rerank"):
        query_deltas(report, "fused")


def test_ranking_changes_put_the_most_changed_first(report):
    changes = ranking_changes(report.get("mini").results, QUERIES)
    assert [c.rbo for c in changes] == sorted(c.rbo for c in changes)
    unchanged = ranking_changes({"x": _result(["a", "b", "c"], ["a", "b", "c"])}, {"x": "q"})
    assert unchanged[0].rbo == pytest.approx(1.0) and unchanged[0].kendall_tau == pytest.approx(1.0)


def test_agreement_matrix():
    same = _ranked("a", ["a", "b", "c", "d"])
    reverse = _ranked("b", ["d", "c", "b", "a"])
    matrix = agreement({"x": same, "y": reverse, "z": same}, k=2)
    assert matrix.kendall_tau[0][1] == pytest.approx(-1.0)
    assert matrix.kendall_tau[0][2] == pytest.approx(1.0)
    assert matrix.overlap[0][1] == 0.0 and matrix.overlap[1][1] == 1.0
    averaged = agreement({"x": [same, same], "y": [same, reverse]}, k=4)
    assert averaged.kendall_tau[0][1] == pytest.approx(0.0) and averaged.queries == 2


def test_model_agreement_over_a_report(report):
    matrix = model_agreement(report, ["fused", "mini"])
    assert matrix.names == ("fused", "mini") and matrix.queries == len(QUERIES)
    assert matrix.kendall_tau[0][0] == pytest.approx(1.0)


def test_report_cache_returns_the_same_report(pipeline, report):
    reports = ReportCache()
    key = reports.key(pipeline, "test", QUERIES, tuple(c.config for c in report.configurations))
    reports.put(key, report)
    assert reports.get(key) is report
    assert reports.get((*key, "other")) is None


def test_compare_on_one_query_reports_lists_latency_agreement_and_errors(pipeline):
    from reranker.evaluation.analysis import compare_on_query

    configs = parse_configurations(["fused", f"mini=rerank:{BUNDLED_MODEL}", "broken=rerank:/no/such/dir"])
    comparison = compare_on_query(pipeline, "young cats", configs)
    assert list(comparison.lists) == ["fused", "mini"] and "/no/such/dir" in comparison.errors["broken"]
    assert set(comparison.lists["mini"].doc_ids()) <= set(comparison.lists["fused"].doc_ids())
    assert comparison.latency_ms["mini"] >= comparison.latency_ms["fused"] > 0
    assert comparison.agreement.names == ("fused", "mini") and comparison.agreement.queries == 1


def test_metrics_match_ranx_on_the_original_ids_ties_included():
    """evaluate_per_query hands ranx stand-in ids of one width; the figures must be ranx's own."""
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate

    from reranker.evaluation.metrics import METRICS, evaluate_per_query

    qrels = {"q1": {"7": 2, "123456789": 1}, "q22": {"x" * 15: 1, "zz": 0}}
    run = {
        # A three-way tie of grades 0, 2, 1, in an order unlike the ids' sorted one: ranx breaks ties by run order.
        "q1": {"b": 0.5, "7": 0.5, "123456789": 0.5, "a": 0.9, "c": 0.1},
        "q22": {"x" * 15: 0.2, "y": 0.2, "zz": 0.3},
    }
    ours = evaluate_per_query(qrels, run, METRICS)
    direct = evaluate(RanxQrels(qrels), RanxRun(run), list(METRICS), return_mean=False, make_comparable=True)
    for metric in METRICS:
        assert [ours[q][metric] for q in ("q1", "q22")] == pytest.approx(list(direct[metric]))
    assert 0 < ours["q1"]["ndcg@10"] < 1


def test_judged_at_10_counts_the_top_ten_that_has_any_judgment():
    from reranker.evaluation.metrics import evaluate_per_query, judged_at

    qrels = {"q": {"a": 2, "b": 0, "c": 1}}
    run = {"q": {"a": 0.9, "x": 0.8, "b": 0.7, "y": 0.6}}
    assert judged_at(qrels["q"], run["q"], 10) == 0.5  # a and b judged (b as not relevant), x and y never judged
    assert judged_at(qrels["q"], run["q"], 1) == 1.0
    per_query = evaluate_per_query(qrels, run, ("ndcg@10", "judged@10"))
    assert per_query["q"]["judged@10"] == 0.5 and 0 < per_query["q"]["ndcg@10"] < 1
