"""The Trade-offs tab in headless Chromium: a small sweep (one fast model, three depths, two blends, four queries
of a small judged corpus) shows the chart with its Pareto front and the recommendation.

The screenshot goes to test-artifacts/tradeoffs.png; assets/tradeoffs.png (the README's) comes from a realistic
run on corpora/knowledge: `python -m tests.test_ui_tradeoffs_browser` (see `screenshot_knowledge`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reranker.models import PROJECT_MODELS
from reranker.ui import build_demo, launch_options
from reranker.ui.state import AppState
from tests.support import CHROMIUM, CHROMIUM_ARGS, free_port, set_dropdown, write_topics

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
FAST_MODEL = "rerank-lens/tiny-general"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium (make test does)"),
    pytest.mark.skipif(FAST_MODEL not in PROJECT_MODELS, reason="the offline family is not checked out (models/)"),
]


def open_page(playwright, state: AppState, viewport: dict):
    demo = build_demo(state)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True, **launch_options())
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport=viewport)
    page.goto(url)
    page.wait_for_function("document.querySelector('#rl-corpus-info')?.innerText.includes('documents')", timeout=120_000)
    page.get_by_role("tab", name="Trade-offs").click()
    page.locator("#rl-tradeoffs-run").wait_for(state="visible")
    return demo, browser, page


def run_sweep(page, models: list[str], depths: str, blends: str, queries: int, budget: int, timeout_ms: int) -> None:
    page.locator("#rl-tradeoffs-models .remove-all").click()  # the default family: replaced by `models`
    for model in models:
        set_dropdown(page, "rl-tradeoffs-models", model)
    for elem_id, value in (("rl-tradeoffs-depths", depths), ("rl-tradeoffs-blends", blends),
                           ("rl-tradeoffs-limit", str(queries)), ("rl-tradeoffs-budget", str(budget))):  # fmt: skip
        box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
        box.fill(value)
        box.press("Tab")
    page.locator("#rl-tradeoffs-run").click()
    page.locator("#rl-tradeoffs-recommendation").wait_for(timeout=timeout_ms)
    page.locator("#rl-tradeoffs-plot .js-plotly-plot").wait_for(timeout=30_000)


def test_a_small_sweep_shows_the_chart_and_the_recommendation(tmp_path):
    from playwright.sync_api import sync_playwright

    write_topics(tmp_path / "corpora" / "knowledge")
    state = AppState(bundled_dir=tmp_path / "corpora", data_dirs=[], cache_dir=str(tmp_path / "emb"))
    with sync_playwright() as p:
        demo, browser, page = open_page(p, state, {"width": 1280, "height": 1100})
        try:
            run_sweep(page, [FAST_MODEL], "0,2,4", "0,0.5", queries=3, budget=100_000, timeout_ms=120_000)
            summary = page.locator("#rl-tradeoffs-recommendation").inner_text()
            assert "Recommendation" in summary and "budget 100000 ms" in summary
            legend = page.locator("#rl-tradeoffs-plot").inner_text()
            assert "Pareto front" in legend and "tiny-general" in legend and "recommended" in legend
            assert page.locator("#rl-tradeoffs-points tr").count() == 1 + 1 + 2 * 2  # header, fused, 2 depths x 2 blends
            downloads = page.locator("#rl-tradeoffs-files").inner_text()
            assert ".json" in downloads and ".csv" in downloads
            ARTIFACTS.mkdir(exist_ok=True)
            page.locator("#rl-tradeoffs-plot").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "tradeoffs.png"), full_page=True)
        finally:
            browser.close()
            demo.close()


def screenshot_knowledge(out: Path = ROOT / "assets" / "tradeoffs.png") -> None:
    """The README's picture: the offline family on 20 judged queries of corpora/knowledge (test), a 1 s budget."""
    from playwright.sync_api import sync_playwright

    models = [FAST_MODEL, "rerank-lens/minilm-l6-general", f"cascade:{FAST_MODEL}+rerank-lens/minilm-l6-general"]
    with sync_playwright() as p:
        demo, browser, page = open_page(p, AppState(bundled_dir=ROOT / "corpora", data_dirs=[]), {"width": 1280, "height": 900})
        try:
            run_sweep(page, models, "0,10,20,30,50", "0,0.5", queries=20, budget=1000, timeout_ms=900_000)
            # From the tab bar to the chart's bottom (the table of every point below is left out). Boxes are
            # relative to the viewport, the clip of a full-page shot to the page: measure at the top.
            page.evaluate("window.scrollTo(0, 0)")
            top = page.get_by_role("tab", name="Trade-offs").bounding_box()
            plot = page.locator("#rl-tradeoffs-plot").bounding_box()
            width = page.viewport_size["width"]
            clip = {"x": 0, "y": top["y"] - 8, "width": width, "height": plot["y"] + plot["height"] - top["y"] + 16}
            page.screenshot(path=str(out), clip=clip, full_page=True)
        finally:
            browser.close()
            demo.close()


if __name__ == "__main__":
    screenshot_knowledge(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "assets" / "tradeoffs.png")
