"""The Evaluate tab's rendering, on a report built by hand (no models): table with significance,
per-query plot, helped/hurt lists with hurt flags, most-changed list, agreement, downloads."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pytest

from reranker.evaluation.analysis import (
    ConfigurationResult,
    EvaluationReport,
    Significance,
    agreement,
    parse_configuration,
    query_deltas,
    ranking_changes,
)
from reranker.evaluation.metrics import evaluate_per_query, stage_run
from reranker.types import Hit, PipelineResult, RankedList, StageTiming
from reranker.ui.evaluate_tab import (
    EvaluationInputs,
    agreement_matrix_html,
    changes_html,
    delta_lists_html,
    evaluate_view,
    metrics_table_html,
    per_query_figure,
    render_report,
)

HOSTILE = "<img src=x onerror=alert(1)>"
QUERIES = {"q1": f"helped query {HOSTILE}", "q2": "hurt query", "q3": "same query"}
QRELS = {"q1": {"a": 2}, "q2": {"b": 2}, "q3": {"c": 1}}
# fused order -> reranked order per query: q1 lifts its relevant doc, q2 pushes it out of the top 2.
ORDERS = {
    "q1": (["x", "y", "a", "z"], ["a", "x", "y", "z"]),
    "q2": (["b", "x", "y", "z"], ["x", "y", "z", "b"]),
    "q3": (["c", "x", "y", "z"], ["c", "x", "y", "z"]),
}


def _ranked(stage, ids):
    return RankedList(stage, tuple(Hit(d, r, float(10 - r), stage) for r, d in enumerate(ids, start=1)), "score")


@pytest.fixture(scope="module")
def report():
    results = {
        q: PipelineResult(
            QUERIES[q],
            {"fused": _ranked("fused", f), "reranked": _ranked("reranked", r)},
            (StageTiming("fused", 1.0), StageTiming("reranked", 20.0)),
            (),
            2,
        )
        for q, (f, r) in ORDERS.items()
    }
    metrics = ("ndcg@10", "mrr@10")
    configs = []
    for spec, stage in (("fused", "fused"), (f"ce={HOSTILE}", "reranked")):
        config = parse_configuration(spec)
        run = stage_run(results, stage)
        per_query = evaluate_per_query(QRELS, run, metrics)
        means = {m: sum(v[m] for v in per_query.values()) / 3 for m in metrics}
        configs.append(ConfigurationResult(config, results, run, per_query, means, {"total": 5.0}, model=None))
    broken = ConfigurationResult(parse_configuration("broken=rerank:/nope"), error=f"cannot load {HOSTILE}")
    sig = Significance("ndcg@10", "fused", "ce", 0.1, 0.02, True, 1, 1, 1)
    return EvaluationReport("demo", "test", QUERIES, QRELS, metrics, (*configs, broken), "fused", "student", 0.05, (sig,))


def test_metrics_table_shows_significance_latency_and_errors_escaped(report):
    html = metrics_table_html(report)
    assert "fused <small>(baseline)</small>" in html
    assert "▲ +0.1000 (p 0.020)" in html and "wins/ties/losses 1/1/1" in html
    assert "could not run: cannot load &lt;img" in html
    assert HOSTILE not in html
    assert "paired t-test" in html and "3 judged queries" in html


def test_per_query_figure_one_point_per_query_with_click_data(report):
    deltas = query_deltas(report, "ce")
    fig = per_query_figure(deltas, "ce")
    points = fig.data[0]
    assert len(points.x) == 3
    assert [list(c) for c in points.customdata] == [["q1", "ce"], ["q2", "ce"], ["q3", "ce"]]
    assert all(HOSTILE not in text for text in points.hovertext)
    by_query = {d.query_id: d for d in deltas}
    assert by_query["q1"].delta > 0 and by_query["q2"].delta < 0 and by_query["q3"].delta == 0
    assert [h.doc_id for h in by_query["q2"].hurt] == ["b"]  # relevant, fused #1, reranked #4 (top-n is 2)
    assert points.marker.symbol[1] == "x"


def test_lists_flag_hurt_queries_and_are_clickable(report):
    deltas = query_deltas(report, "ce")
    html = delta_lists_html(deltas, "ce")
    helped = html.split("id='rl-eval-hurt'")[0]
    hurt = html.split("id='rl-eval-hurt'")[1]
    assert "data-qid='q1'" in helped and "data-qid='q2'" in hurt
    assert "⚠ reranker hurt: b (grade 2, #1 → #4)" in hurt
    assert "<b>1</b> queries with a ⚠ reranker-hurt flag" in html
    assert HOSTILE not in html
    changes = changes_html(ranking_changes(report.get("ce").results, QUERIES), "ce")
    assert changes.index("data-qid='q2'") < changes.index("data-qid='q3'")  # most changed first


def test_agreement_matrix_html():
    a = _ranked("a", ["a", "b", "c"])
    b = _ranked("b", ["c", "b", "a"])
    html = agreement_matrix_html(agreement({"A": a, "B": b}, k=3))
    assert "τ -1.00" in html and "100%" in html
    assert agreement_matrix_html(agreement({"A": a})) == ""


def test_render_report_writes_downloads(report):
    view = render_report(report, cached=True)
    assert "Shown from the cache" in view.notes and "broken could not run" in view.notes
    names = {Path(f).name: f for f in view.files}
    assert set(names) == {"per_query.csv", "metrics.csv", "evaluation.json", "trec_runs.zip"}
    rows = list(csv.DictReader(open(names["per_query.csv"])))
    assert len(rows) == 3 * 3
    assert json.loads(Path(names["evaluation.json"]).read_text())["baseline"] == "fused"
    with zipfile.ZipFile(names["trec_runs.zip"]) as archive:
        assert len(archive.namelist()) == 2 and "fused.trec" in archive.namelist()
        assert archive.read("fused.trec").decode().startswith("q1 Q0 x 1 ")


def test_corpus_without_qrels_explains_what_is_missing(tmp_path):
    from reranker.errors import ConfigError
    from reranker.ui.state import AppState

    folder = tmp_path / "corpora" / "plain"
    folder.mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "some text"}) + "\n")
    state = AppState(bundled_dir=tmp_path / "corpora", data_dirs=[])
    with pytest.raises(ConfigError, match=r"no relevance judgments.*search still works"):
        evaluate_view(state, EvaluationInputs("bundled:plain", "test", ["fused"], None, "student", 0, {}))


def test_judging_a_corpus_without_qrels_makes_it_evaluable_and_the_notes_say_so(tmp_path):
    from reranker.ui.state import AppState

    folder = tmp_path / "corpora" / "plain"
    folder.mkdir(parents=True)
    texts = {"d1": "volcanoes erupt lava and ash", "d2": "sourdough bread rises", "d3": "tides follow the moon"}
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in texts.items()))
    state = AppState(bundled_dir=tmp_path / "corpora", data_dirs=[], judgments_dir=tmp_path / "judgments",
                     cache_dir=str(tmp_path / "cache"))
    state.judge("bundled:plain", "why do volcanoes erupt", "d1", 3)
    state.judge("bundled:plain", "why do volcanoes erupt", "d3", 0)
    view = evaluate_view(state, EvaluationInputs("bundled:plain", "test", ["bm25"], None, "student", 0, {}))
    assert "1 judged queries" in view.table
    assert "2 overlay judgments (made in the app or uploaded) merged over the shipped qrels" in view.notes
    assert not (folder / "qrels").exists()  # the corpus folder is never written to


def test_query_comparison_html_lists_each_configuration(report):
    from reranker.evaluation.analysis import QueryComparison
    from reranker.ui.evaluate_tab import query_comparison_html

    a = _ranked("fused", ["x", "y", "a"])
    b = _ranked("reranked", ["a", "x", "y"])
    lists = {"A": a, "B": b}
    comparison = QueryComparison(HOSTILE, lists, {"A": 2.0, "B": 30.0}, {"C": "cannot load"}, agreement(lists))
    html = query_comparison_html(comparison, {"a": "Doc A"}, top=3)
    assert "30 ms" in html and "Doc A" in html and "C could not run: cannot load" in html
    assert "(1 query)" in html and HOSTILE not in html


def test_search_settings_follow_the_clicked_configuration():
    from reranker.ui.evaluate_tab import search_settings_for
    from reranker.ui.settings import Settings

    assert search_settings_for("ce=rerank:org/model@rerank_depth=10@top_n=5") == {
        "cross_encoder": "org/model",
        "rerank_depth": 10,
        "top_n": 5,
    }
    assert search_settings_for("fused") == {}
    # The blend and the budget as the page's widgets write them, and back to the pipeline's values unchanged.
    page = search_settings_for("ce=rerank:org/model@blend=0.3@latency_budget_ms=500")
    assert page == {"cross_encoder": "org/model", "blend": "0.3", "latency_budget_ms": 500.0}
    overrides = Settings(**page).overrides()
    assert (overrides["blend"], overrides["latency_budget_ms"]) == (0.3, 500.0)


def test_evidence_panels_show_intervals_slices_queue_and_thresholds(report):
    from reranker.corpus import Corpus
    from reranker.types import Document
    from reranker.ui.evaluate_evidence import evidence_view

    corpus = Corpus(tuple(Document(d, f"text of {d}", f"title {d}") for d in "abcxyz"))
    view = evidence_view(report, corpus, {"q1": "keyword", "q2": "question", "q3": "keyword"})
    assert "95% interval of Δ" in view.sure and "smallest Δ detectable" in view.sure
    assert "(judged@10" in view.sure  # x, y, z are unjudged: bounds are shown
    assert "query type" in view.slices and "keyword" in view.slices and HOSTILE not in view.slices
    assert "data-qid=" in view.queue and "Judge next" in view.queue  # rows open the query in Search
    assert "no scored pairs" in view.thresholds  # these hand-made hits carry no sigmoid scores
    table = metrics_table_html(report)
    assert "95% " in table and "unjudged: " in table
