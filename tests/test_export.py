"""Exports: one stage as a run, per-query CSV, JSON, and the self-contained HTML snapshot in Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import SEED_QUERY

from reranker.corpus import build_corpus
from reranker.errors import ConfigError
from reranker.evaluation.analysis import evaluate_configurations, parse_configurations
from reranker.evaluation.export import (
    html_snapshot,
    metrics_csv,
    per_query_csv,
    report_to_json,
    result_run,
    snapshot_filename,
    write_snapshot,
)
from reranker.types import Document
from tests.support import CHROMIUM, CHROMIUM_ARGS


def test_result_run_of_one_stage(seed_pipeline):
    result = seed_pipeline.search(SEED_QUERY)
    run = result_run(result, "fused", "seed")
    assert list(run) == ["seed"] and set(run["seed"]) == set(result.stages["fused"].doc_ids())
    with pytest.raises(ConfigError, match="did not run"):
        result_run(result, "coarse")


@pytest.fixture(scope="module")
def small_report(seed_pipeline):
    queries = {"a": SEED_QUERY, "b": "recurrent networks hidden state"}
    qrels = {"a": {"attention-def": 2, "attention-cost": 1}, "b": {"rnn": 2}}
    configs = parse_configurations(["bm25,fused", "broken=rerank:/no/such/dir"])
    return evaluate_configurations(seed_pipeline, queries, qrels, configs, baseline="fused", dataset="seed", split="test")


def test_per_query_csv_has_a_row_per_query_and_configuration(small_report):
    rows = list(csv.DictReader(io.StringIO(per_query_csv(small_report))))
    assert len(rows) == 2 * 3
    assert {r["configuration"] for r in rows} == {"bm25", "fused", "broken"}
    fused = [r for r in rows if r["configuration"] == "fused"]
    assert all(float(r["delta_ndcg@10"]) == 0.0 for r in fused)
    broken = [r for r in rows if r["configuration"] == "broken"]
    assert all("/no/such/dir" in r["error"] and r["ndcg@10"] == "" for r in broken)
    bm25 = {r["query_id"]: float(r["ndcg@10"]) for r in rows if r["configuration"] == "bm25"}
    assert bm25 == pytest.approx({q: v["ndcg@10"] for q, v in small_report.get("bm25").per_query.items()}, abs=1e-4)


def test_json_and_metrics_csv(small_report):
    data = json.loads(json.dumps(report_to_json(small_report)))
    assert data["baseline"] == "fused" and data["queries"] == 2
    assert data["configurations"]["broken"]["error"]
    tested = {m for m in small_report.metrics if not m.startswith("judged@")}  # coverage is reported, not tested
    assert set(data["configurations"]["bm25"]["significance"]) == tested and "judged@10" in small_report.metrics
    rows = list(csv.DictReader(io.StringIO(metrics_csv(small_report))))
    assert [r["configuration"] for r in rows] == ["bm25", "fused", "broken"]
    assert float(rows[0]["ndcg@10"]) == pytest.approx(small_report.get("bm25").means["ndcg@10"], abs=1e-4)


HOSTILE = '<script>window.hacked=1</script><img src=x onerror="window.hacked=2">'


@pytest.fixture(scope="module")
def hostile_result(tmp_path_factory):
    from conftest import BUNDLED_MODEL

    from reranker.pipeline import Pipeline, PipelineConfig

    docs = [
        Document("evil", "attention mechanism text " + HOSTILE, "Attention " + HOSTILE),
        Document("plain", "transformer attention weights are a softmax of dot products", "Plain attention"),
        Document("other", "recurrent networks carry a hidden state across steps", "RNN"),
        Document("far", "bananas are yellow fruit", "Fruit"),
    ]
    corpus = build_corpus(docs, name="hostile")
    config = PipelineConfig(cross_encoder=BUNDLED_MODEL, rerank_depth=4, top_n=3)
    pipeline = Pipeline(corpus, config, cache_dir=str(tmp_path_factory.mktemp("emb")))
    return pipeline.search("transformer attention " + HOSTILE), corpus


def hostile_explanation(corpus):
    """An explanation of the hostile document, built by hand: its sentences, the second raising the score most."""
    from reranker.explain import Explanation, SpanContribution, sentence_spans
    from reranker.types import ChunkScore

    text = corpus["evil"].full_text
    spans = tuple(
        SpanContribution(s, e, text[s:e], 1.0 if i == 1 else -0.2, i, i + 1) for i, (s, e) in enumerate(sentence_spans(text))
    )
    window = ChunkScore(0, 0, len(text), 0.5, 0, len(spans))
    return Explanation("q", text, "m", "occlusion", "sentence", 0.5, window, 1, True, spans, len(spans) + 1, 9.0, len(spans))


def test_snapshot_escapes_text_and_inlines_plotly(hostile_result):
    result, corpus = hostile_result
    page = html_snapshot(result, corpus, judgments={"plain": 2}, explanation=("evil", hostile_explanation(corpus)))
    assert HOSTILE not in page and "&lt;script&gt;window.hacked=1&lt;/script&gt;" in page
    assert '<section id="explanation">' in page and page.count('class="heat"') == 2
    assert "logit change: the window&#x27;s score minus its score with the sentence removed" in page
    assert '<section id="explanation">' not in html_snapshot(result, corpus, include_figure=False)
    assert not re.search(r"<(script|link)[^>]+(src|href)=", page)  # nothing loaded from elsewhere
    assert len(page) > 1_000_000  # plotly.js itself is inside
    assert snapshot_filename("What is <x>?") == "rerank-lens-what-is-x.html"


def test_snapshot_draws_its_lists_as_the_page_does_without_the_grade_buttons(hostile_result):
    from reranker.ui import render

    result, corpus = hostile_result
    snapshot = html_snapshot(result, corpus, judgments={"plain": 2}, include_figure=False)
    page = render.before_after_html(result, corpus, judgments={"plain": 2})
    cells = re.compile(r'<td class="rl-doc"><div class="rl-title">.*?</div><div class="rl-snippet">.*?</div>')
    assert cells.findall(snapshot) == cells.findall(page) and len(cells.findall(page)) == 2 * 3  # same rows, same snippets
    badges = re.compile(r'<td class="rl-move">(.*?)</td>')
    assert badges.findall(snapshot) == badges.findall(page)
    assert 'class="rl-grade' not in snapshot and "rl-grades" not in snapshot  # nothing to click in a file
    assert "<script" not in snapshot and ".rl-badge {" in snapshot  # the page's list styles, inlined


@pytest.mark.browser
def test_snapshot_opens_offline_in_chromium_and_shows_both_lists(hostile_result, tmp_path):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian chromium is not installed (make browser installs it)")
    from playwright.sync_api import sync_playwright

    result, corpus = hostile_result
    explained = ("evil", hostile_explanation(corpus))
    path = write_snapshot(tmp_path / "snap.html", result, corpus, judgments={"plain": 2}, explanation=explained)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True)
            page = context.new_page()
            page.goto(path.as_uri())
            assert page.locator("#query").inner_text().startswith("transformer attention <script>")
            assert page.locator("#fused tr").count() == 1 + 3  # header + top 3
            assert page.locator("#final tr").count() == 1 + 3
            # The bundled cross-encoder's head is untrained, so the order is whatever this result holds.
            final_text = page.locator("#final").inner_text()
            for hit in result.after.hits[:3]:
                if hit.doc_id != "evil":  # its title is escaped markup, checked by the escaping test
                    assert final_text.count(corpus[hit.doc_id].title) == 1, hit.doc_id
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=15_000)  # the inlined plotly.js rendered
            assert page.evaluate("typeof window.hacked") == "undefined"
            assert page.locator("#latency tr").count() >= 4
            assert page.locator("#explanation .heat").count() == 2 and "logit change" in page.locator("#explanation").inner_text()
            page.screenshot(path=str(tmp_path / "snapshot.png"), full_page=True)
        finally:
            browser.close()
