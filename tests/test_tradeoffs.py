"""Trade-offs sweep: derived configurations equal `eval` of the same configuration, each pair is scored once,
the Pareto front and the recommendation on hand-made points, and `tradeoffs --json` / `--csv`."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from reranker.cli import main
from reranker.cross_encoder import ScoreCache
from reranker.errors import ConfigError
from reranker.evaluation.analysis import evaluate_configurations, parse_configurations
from reranker.evaluation.tradeoffs import (
    PairLedger,
    Point,
    SweepCache,
    SweepSettings,
    default_models,
    pareto_front,
    parse_numbers,
    recommend,
    sweep,
    sweep_csv,
)
from reranker.pipeline import Pipeline, PipelineConfig
from reranker.types import Document
from tests.conftest import BUNDLED_MODEL, SEED_DOCUMENTS, SEED_QUERY
from tests.support import write_beir

MORE_DOCUMENTS = (
    Document("lstm", "Long short-term memory cells gate what a recurrent network keeps in its hidden state.", "LSTM"),
    Document("softmax", "The softmax turns scores into weights that sum to one; attention uses it over keys.", "Softmax"),
    Document("cnn", "Convolutional networks slide filters over images and share weights across positions.", "CNN"),
)
DOCUMENTS = SEED_DOCUMENTS + MORE_DOCUMENTS
QUERIES = {
    "q1": SEED_QUERY,
    "q2": "recurrent networks with a hidden state",
    "q3": "cost of self-attention on long inputs",
    "q4": "how are attention weights normalised",
}
QRELS = {
    "q1": {"attention-def": 2, "softmax": 1},
    "q2": {"rnn": 2, "lstm": 1},
    "q3": {"attention-cost": 2},
    "q4": {"softmax": 2, "attention-def": 1},
}
B = BUNDLED_MODEL


@pytest.fixture(scope="module")
def pipeline():
    from reranker.corpus import build_corpus

    return Pipeline(build_corpus(list(DOCUMENTS)), PipelineConfig(cross_encoder=None, allow_untrained_head=True))


@pytest.fixture(scope="module")
def swept(pipeline):
    settings = SweepSettings(models=(B, f"cascade:{B}+{B}"), depths=(0, 2, 3, 5), blends=(0.0, 0.4), coarse_depth=5)
    return sweep(pipeline, QUERIES, QRELS, settings, dataset="tiny", split="test")


def test_a_derived_configuration_equals_eval_of_the_same_configuration(pipeline, swept):
    specs = [
        "fused",
        f"a=rerank:{B}@rerank_depth=3@blend=0.4",
        f"b=rerank:{B}@rerank_depth=2@blend=0",
        f"c=cascade:{B}+{B}@rerank_depth=2@coarse_depth=5@blend=0.4",
    ]
    report = evaluate_configurations(pipeline, QUERIES, QRELS, parse_configurations(specs), metrics=("ndcg@10", "recall@10"))
    pairs = {"fused": ("fused", 0, 0.0), "a": (B, 3, 0.4), "b": (B, 2, 0.0), "c": (f"cascade:{B}+{B}", 2, 0.4)}
    points = {p.key: p for p in swept.points}
    for name, key in pairs.items():
        evaluated = report.get(name)
        assert evaluated.ok, evaluated.error
        for qid in QUERIES:
            assert swept.per_query[key][qid] == pytest.approx(evaluated.per_query[qid]["ndcg@10"], abs=1e-9)
        assert points[key].ndcg == pytest.approx(evaluated.means["ndcg@10"], abs=1e-9)
        assert points[key].recall == pytest.approx(evaluated.means["recall@10"], abs=1e-9)
    # Reranking changes something on this corpus, so the comparison above can fail.
    assert any(swept.per_query[(B, 5, 0.0)][q] != swept.per_query[("fused", 0, 0.0)][q] for q in QUERIES)


def test_every_pair_is_scored_once_at_the_deepest_depth(pipeline, swept):
    from reranker.evaluation.tradeoffs import _reranker

    fresh = _reranker(B, pipeline.config, ScoreCache())
    expected = 0
    for text in QUERIES.values():
        fused = pipeline.search(text, cross_encoder=None).stages["fused"]
        expected += fresh.rerank(text, fused, pipeline.corpus, depth=5).pairs_scored
    assert swept.pairs_scored == expected  # shallower depths, blends and the cascade scored nothing new
    assert len(swept.points) == 1 + 2 * 3 * 2
    assert all(p.p50_ms > 0 and p.p95_ms >= p.p50_ms for p in swept.points)
    deeper = {p.depth: p.p50_ms for p in swept.points if p.model == B and p.blend == 0.0}
    assert deeper[2] <= deeper[3] <= deeper[5]  # each depth adds the cost of the pairs it adds
    assert swept.front and swept.recommendation is not None


def test_the_ledger_shares_a_call_time_among_the_pairs_it_scored():
    ledger = PairLedger()
    with ledger.measure() as read:
        ledger.get(("m", "q", "aa"))
        ledger.put(("m", "q", "aa"), 1.0)
        ledger.get(("m", "q", "aaaaaa"))
        ledger.put(("m", "q", "aaaaaa"), 2.0)
    assert read == [("m", "q", "aa"), ("m", "q", "aaaaaa")]
    short, long = ledger.cost_ms[("m", "q", "aa")], ledger.cost_ms[("m", "q", "aaaaaa")]
    assert long == pytest.approx(short * (1 + 6 + 1) / (1 + 2 + 1))
    with ledger.measure() as again:
        assert ledger.get(("m", "q", "aa")) == 1.0
    assert again == [("m", "q", "aa")] and ledger.pairs_scored == 2 and ledger.rescored == 0


def _point(model, depth, ndcg, p50):
    return Point(model, depth, 0.0, ndcg, ndcg, p50, p50 * 1.5)


def test_pareto_front_keeps_points_nothing_beats_on_both_axes():
    points = [
        _point("fused", 0, 0.50, 10),
        _point("a", 10, 0.60, 50),
        _point("a", 20, 0.58, 80),  # slower and worse than a@10: off the front
        _point("b", 10, 0.60, 60),  # as good as a@10 but slower: off
        _point("b", 50, 0.70, 200),
    ]
    assert [(p.model, p.depth) for p in pareto_front(points)] == [("fused", 0), ("a", 10), ("b", 50)]


def test_recommendation_fits_the_budget_or_says_nothing_fits():
    points = [_point("fused", 0, 0.50, 10), _point("a", 10, 0.60, 50)]
    best, reason = recommend(points, None, {}, {"q": ""}, {})
    assert best is not None and best.point.depth == 10 and best.loss == 0 and "best configuration overall" in reason
    none, reason = recommend(points, 5, {}, {"q": ""}, {})
    assert none is None and "nothing fits" in reason and "10 ms" in reason


def test_a_recommendation_under_a_budget_has_its_loss_tested(pipeline):
    settings = SweepSettings(models=(B,), depths=(0, 5), blends=(0.0,))
    probe = sweep(pipeline, QUERIES, QRELS, settings)
    fused = next(p for p in probe.points if p.depth == 0)
    reranked = next(p for p in probe.points if p.depth == 5)
    budget = (fused.p50_ms + reranked.p50_ms) / 2
    result = sweep(pipeline, QUERIES, QRELS, SweepSettings(models=(B,), depths=(0, 5), blends=(0.0,), budget_ms=budget))
    chosen = result.recommendation
    assert chosen is not None and chosen.point.p50_ms <= budget
    if chosen.point.key != chosen.best.key:
        assert chosen.loss == pytest.approx(chosen.best.ndcg - chosen.point.ndcg)
        assert 0 <= chosen.p_value <= 1 and chosen.wins + chosen.ties + chosen.losses == len(QUERIES)
        assert "p = " in result.reason


def test_settings_are_checked_with_the_fix():
    with pytest.raises(ConfigError, match="between 0"):
        SweepSettings(models=(B,), depths=(-1,)).validate()
    with pytest.raises(ConfigError, match="cascade:COARSE"):
        SweepSettings(models=("cascade:onlyone",)).validate()
    with pytest.raises(ConfigError, match="blend"):
        SweepSettings(models=(B,), blends=(1.5,)).validate()
    with pytest.raises(ConfigError, match="numbers"):
        parse_numbers("10, twenty", int, "depths")
    assert parse_numbers("0, 10 10,20", int, "depths") == (0, 10, 20)
    assert all(m.startswith(("rerank-lens/", "cascade:")) for m in default_models())


def test_the_cache_is_bounded_and_keyed_by_settings(pipeline, swept):
    cache = SweepCache(max_entries=1)
    a = cache.key(pipeline, "tiny", "test", QUERIES, QRELS, swept.settings)
    b = cache.key(pipeline, "tiny", "test", QUERIES, QRELS, SweepSettings(models=(B,)))
    cache.put(a, swept)
    assert cache.get(a) is swept and cache.get(b) is None
    cache.put(b, swept)
    assert cache.get(a) is None and len(cache) == 1


def test_csv_has_a_row_per_point_and_marks_front_and_recommendation(swept):
    rows = list(csv.DictReader(sweep_csv(swept).splitlines()))
    assert len(rows) == len(swept.points)
    assert sum(r["recommended"] == "True" for r in rows) == 1
    assert sum(r["pareto"] == "True" for r in rows) == len(swept.front)


def test_cli_json_holds_every_point_the_front_and_the_recommendation(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RERANK_LENS_CACHE", str(tmp_path / "cache"))
    folder = write_beir(tmp_path / "beir", DOCUMENTS, QUERIES, QRELS)
    out_csv = tmp_path / "sweep.csv"
    argv = ["tradeoffs", "--dataset", str(folder), "--models", B, "--depths", "0,3", "--blends", "0,0.5",
            "--latency-budget-ms", "100000", "--json", "--csv", str(out_csv), "--allow-untrained-head"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"points", "front", "recommendation", "budget_ms", "machine"} <= set(data)
    assert len(data["points"]) == 1 + 2 and data["budget_ms"] == 100000
    assert set(data["points"][0]) == {"model", "depth", "blend", "ndcg@10", "recall@10", "p50_ms", "p95_ms"}
    assert data["recommendation"]["p50_ms"] <= 100000 and {"cpu", "cores", "device"} <= set(data["machine"])
    assert out_csv.read_text().startswith("model,depth,blend")
    assert main([*argv[:-4], "--latency-budget-ms", "0.001", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recommendation"] is None and "nothing fits" in data["reason"]


def test_cli_bad_depths_exit_2_with_the_fix(tmp_path, capsys):
    folder = write_beir(tmp_path / "beir", DOCUMENTS, QUERIES, QRELS)
    assert main(["tradeoffs", "--dataset", str(folder), "--models", B, "--depths", "ten"]) == 2
    assert "numbers separated by commas" in capsys.readouterr().err


def test_the_tab_shows_the_front_the_recommendation_and_escapes_names(swept):
    from reranker.ui.tradeoffs_tab import points_table_html, recommendation_html, tradeoffs_figure

    figure = tradeoffs_figure(swept)
    names = [trace.name for trace in figure.data]
    assert "Pareto front" in names and "recommended" in names and "fused, no reranking" in names
    front = next(t for t in figure.data if t.name == "Pareto front")
    assert list(front.x) == [p.p50_ms for p in swept.front]
    assert "ms" in figure.layout.xaxis.title.text and "nDCG@10" in figure.layout.yaxis.title.text
    table = points_table_html(swept)
    rows = table.split("</table>")[0]
    assert rows.count("<tr>") == 1 + len(swept.points) and rows.count("★") == len(swept.front) and rows.count("→") == 1
    summary = recommendation_html(swept)
    assert "id='rl-tradeoffs-recommendation'" in summary and "cores" in summary
    hostile = dataclasses.replace(swept, dataset="<script>x</script>", reason="<b>x</b>")
    assert "<script>" not in recommendation_html(hostile) + str(tradeoffs_figure(hostile).layout.title.text)
    assert "<b>x</b>" not in recommendation_html(hostile)


def test_the_tab_endpoint_reports_progress_and_can_be_cancelled(tmp_path):
    from reranker.ui import build_demo
    from reranker.ui.state import AppState
    from tests.support import write_topics

    write_topics(tmp_path / "corpora" / "knowledge")
    demo = build_demo(AppState(bundled_dir=tmp_path / "corpora", data_dirs=[], cache_dir=str(tmp_path / "emb")))
    events = {fn.api_name: fn for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert events["tradeoffs"].tracks_progress
    run_id = events["tradeoffs"]._id
    assert any(run_id in (fn.cancels or ()) for fn in demo.fns.values())


@pytest.mark.parametrize(
    ("flags", "precision"),
    [("avx2 avx512f avx512_bf16 amx_tile amx_bf16 amx_int8", "bf16"), ("avx2,avx512f,avx512_bf16,avx512_vnni", "fp32")],
)
def test_on_each_cpu_class_a_derived_configuration_equals_eval(monkeypatch, flags, precision):
    """CI machines differ (AMX: `auto` is bf16 in full batches; AVX512-BF16 without AMX: fp32 in passes): the sweep's
    derived figures equal `eval`'s on each class, as the suite's plain-AVX2 run checks above."""
    from reranker import speed
    from reranker.corpus import build_corpus
    from reranker.evaluation.tradeoffs import _reranker

    monkeypatch.setenv(speed.CPU_FLAGS_ENV, flags)
    speed.cpu_flags.cache_clear()
    try:
        pipeline = Pipeline(build_corpus(list(DOCUMENTS)), PipelineConfig(cross_encoder=None, allow_untrained_head=True))
        assert _reranker(B, pipeline.config, None).precision == precision  # the class is really simulated
        swept = sweep(pipeline, QUERIES, QRELS, SweepSettings(models=(B,), depths=(3,), blends=(0.4,)), dataset="t", split="test")
        report = evaluate_configurations(
            pipeline, QUERIES, QRELS, parse_configurations([f"a=rerank:{B}@rerank_depth=3@blend=0.4"]), metrics=("ndcg@10",)
        )
        evaluated = report.get("a")
        assert evaluated.ok, evaluated.error
        for qid in QUERIES:
            assert swept.per_query[(B, 3, 0.4)][qid] == pytest.approx(evaluated.per_query[qid]["ndcg@10"], abs=1e-9)
    finally:
        speed.cpu_flags.cache_clear()
