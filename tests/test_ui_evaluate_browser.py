"""The Evaluate tab in headless Chromium: evaluate the bundled knowledge corpus with two
configurations, read the table with significance, click a hurt query and land on its Search view.

Screenshots go to test-artifacts/; with RERANK_LENS_UPDATE_SCREENSHOT=1 the evaluation view also
refreshes assets/evaluate.png, a picture in the README and docs/evaluation.md.
"""

from __future__ import annotations

import html
import os
import shutil
from pathlib import Path

import pytest

from reranker.models import PROJECT_MODELS
from reranker.ui import build_demo, launch_options
from reranker.ui.state import AppState
from tests.conftest import BUNDLED_MODEL
from tests.support import CHROMIUM, CHROMIUM_ARGS, free_port, set_dropdown

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "corpora"
ARTIFACTS = ROOT / "test-artifacts"
LONG_WAIT = 480_000  # ms: a cold, shared CPU encodes the corpus and reranks every query
QUERIES = 8

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium (make test does)"),
    pytest.mark.skipif(not (BUNDLED / "knowledge" / "qrels" / "test.tsv").is_file(), reason="the knowledge corpus is not built"),
]


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    demo = build_demo(AppState(bundled_dir=BUNDLED, data_dirs=[]))
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True, **launch_options())
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(url)
            yield page
            browser.close()
    finally:
        demo.close()


def test_evaluate_two_configurations_then_open_a_hurt_query(page):
    page.locator("#rl-query textarea").wait_for()
    # Wait for the corpus to load, so the Evaluate tab offers it.
    page.wait_for_function("document.querySelector('#rl-corpus-info')?.innerText.includes('documents')", timeout=120_000)
    page.get_by_role("tab", name="Evaluate").click()
    page.locator("#rl-eval-config-1 input").wait_for(state="visible")
    reranker = "auto" if PROJECT_MODELS else f"rerank:{BUNDLED_MODEL}"
    set_dropdown(page, "rl-eval-config-1", "fused")
    set_dropdown(page, "rl-eval-config-2", f"ce={reranker}@rerank_depth=20")
    limit = page.locator("#rl-eval-limit input")
    limit.fill(str(QUERIES))
    limit.press("Tab")
    page.locator("#rl-eval-run").click()

    table = page.locator("#rl-eval-table")
    table.wait_for(timeout=LONG_WAIT)
    text = table.inner_text()
    assert "fused (baseline)" in text and "ce" in text
    assert "(p " in text and "paired t-test" in text  # Δ and p-value against the baseline
    assert f"{QUERIES} judged queries" in text
    points = page.locator("#rl-eval-plot .scatterlayer path.point")
    points.first.wait_for(timeout=60_000)
    assert points.count() == QUERIES  # one point per query
    assert "reranker-hurt flag" in page.locator("#rl-eval-lists").inner_text()
    # The evidence panels follow the table: how sure, slices, judge-next, the reliability diagram and threshold.
    page.locator("#rl-eval-thresholds").wait_for(timeout=60_000)
    assert "95% interval of Δ" in page.locator("#rl-eval-sure").inner_text()
    assert "query type" in page.locator("#rl-eval-slices").inner_text()
    assert "Judge next" in page.locator("#rl-eval-queue").inner_text()
    assert page.locator("#rl-eval-reliability .scatterlayer .trace").count() >= 2  # the diagonal and the model
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "evaluate.png"), full_page=True)
    if os.environ.get("RERANK_LENS_UPDATE_SCREENSHOT"):
        shutil.copy(ARTIFACTS / "evaluate.png", ROOT / "assets" / "evaluate.png")

    rows = page.locator("#rl-eval-hurt .rl-eval-row")
    if rows.count() == 0:  # reranking helped or tied everywhere: open the most-changed query instead
        rows = page.locator("#rl-eval-changes .rl-eval-row")
    qid = rows.first.get_attribute("data-qid")
    query = rows.first.locator("td").first.inner_text().split("\n")[0].rstrip("…")
    # The page opened on the seed query's answer: wait for the clicked query's answer to replace it.
    summary = page.locator("#rl-summary .rl-summary")
    summary.wait_for(state="attached", timeout=LONG_WAIT)
    opening = summary.inner_text()
    rows.first.click()

    page.wait_for_function(
        "before => document.querySelector('#rl-summary .rl-summary')?.innerText !== before",
        arg=opening, timeout=LONG_WAIT,
    )
    page.locator("#rl-lists .rl-col-after tr[data-doc]").first.wait_for(timeout=LONG_WAIT)
    assert page.locator("#rl-query textarea").input_value().startswith(query)
    assert page.get_by_role("tab", name="Search").get_attribute("aria-selected") == "true"
    assert page.locator("#rl-lists .rl-col-before tr[data-doc]").count() >= 1
    assert "nDCG@10" in page.locator("#rl-summary").inner_text(), qid  # a judged query: before/after shown
    page.screenshot(path=str(ARTIFACTS / "evaluate_clicked.png"), full_page=True)
    assert "Traceback" not in page.content()


def test_clicking_a_point_of_the_per_query_plot_opens_that_query(page):
    """Runs after the test above (same page): back to Evaluate, click another query's point."""
    current = page.locator("#rl-query textarea").input_value()
    page.get_by_role("tab", name="Evaluate").click()
    points = page.locator("#rl-eval-plot .scatterlayer path.point")
    points.first.wait_for(timeout=60_000)
    queries = page.evaluate(
        "() => document.querySelector('#rl-eval-plot .js-plotly-plot').data[0].hovertext.map(t => t.split('<br>')[0])"
    )
    index = next(i for i, label in enumerate(queries) if not label.split(": ", 1)[1].startswith(current[:40]))
    points.nth(index).scroll_into_view_if_needed()
    box = points.nth(index).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "q => document.querySelector('#rl-query textarea').value !== q", arg=current, timeout=60_000
    )
    expected = html.unescape(queries[index].split(": ", 1)[1]).rstrip("…")  # hover text is escaped
    assert page.locator("#rl-query textarea").input_value().startswith(expected)
    assert page.get_by_role("tab", name="Search").get_attribute("aria-selected") == "true"
