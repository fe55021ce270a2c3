"""The app in a real browser (Debian's chromium through Playwright), as a person uses it: the page opens
on the seed query's answer without a click (saying it is preparing the corpus and model while the
server's warm-up runs), both lists with movements and the latency chart, hover a document, a deep link
that runs its own query, a long document's chunk scores and the explanation of its deciding window,
two models compared, an unavailable model, judging documents (by click and by key; kept over a reload,
downloaded, removed again, and not lost when a second browser judges at the same time).

Screenshots go to test-artifacts/ (gitignored); with RERANK_LENS_UPDATE_SCREENSHOT=1 the search view
also replaces assets/screenshot.png, the explain view assets/explain.png and judging assets/judging.png,
the README's and docs' pictures.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from reranker.judgments import new_query_id
from reranker.pipeline import default_cross_encoder
from reranker.ui import build_demo, launch_options
from reranker.ui.search_tab import PREPARING
from reranker.ui.state import SEED_QUERY, AppState
from tests.conftest import BUNDLED_MODEL
from tests.support import CHROMIUM, CHROMIUM_ARGS, free_port, set_dropdown

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
BUNDLED = ROOT / "corpora"
# A judged query of the longdocs corpus, answered deep inside document L01.
LONG_QUERY = (
    "Can we still roll back to the old Postgres cluster after the upgraded server has started, if pg_upgrade used hard links?"
)
LONG_WAIT = 300_000  # ms: a cold CPU encodes the corpus and loads the models on the first query

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium (make test does)"),
    pytest.mark.skipif(
        not (BUNDLED / "knowledge" / "corpus.jsonl").is_file() or not (BUNDLED / "longdocs" / "corpus.jsonl").is_file(),
        reason="the bundled knowledge and longdocs corpora are not built",
    ),
]


# A query the knowledge corpus does not ship: nobody has judged it, so its lists start unjudged.
JUDGE_QUERY = "How do transformers keep track of word order?"
GRADE_WAIT = 120_000  # ms: a grade's first nDCG compiles ranx when the server skipped its warm-up


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    state = AppState(bundled_dir=BUNDLED, data_dirs=[], judgments_dir=tmp_path_factory.mktemp("judgments"))
    demo = build_demo(state)
    _, address, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True, **launch_options())
    yield address, state
    demo.close()


@pytest.fixture(scope="module")
def url(served):
    return served[0]


@pytest.fixture(scope="module")
def page(url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        yield page
        browser.close()


def reranker_spec() -> str:
    """The best cross-encoder available offline ("auto": the project's fine-tuned one once it is built),
    else the bundled MiniLM with an untrained head, which exercises the same code paths."""
    return "auto" if default_cross_encoder() else BUNDLED_MODEL


def open_settings(page) -> None:
    if not page.locator("#rl-cross input").is_visible():
        page.get_by_text("Models & settings").click()
        page.locator("#rl-cross input").wait_for(state="visible")


def close_settings(page) -> None:
    if page.locator("#rl-cross input").is_visible():
        page.get_by_text("Models & settings").click()


def test_page_opens_on_the_seed_query_answer(page, served):
    """No click: while the warm-up prepares the corpus and model the results area says so, then the
    seed query's answer appears, both lists side by side."""
    url, state = served
    ARTIFACTS.mkdir(exist_ok=True)
    after_rows = page.locator("#rl-lists .rl-col-after tr[data-doc]")
    warm_up_done = state.mark_warming(state.default_key)  # as app.py's warm-up does while the server starts
    try:
        page.goto(url)
        page.locator("#rl-lists").get_by_text(PREPARING).first.wait_for(timeout=60_000)
        assert page.locator("#rl-query textarea").input_value() == SEED_QUERY
        state.pipeline(state.default_key)  # the index is built: an opening query that did not wait would answer now
        page.wait_for_timeout(3_000)
        assert after_rows.count() == 0 and PREPARING in page.locator("#rl-lists").inner_text()
        page.screenshot(path=str(ARTIFACTS / "preparing.png"))
    finally:
        warm_up_done.set()
    after_rows.first.wait_for(timeout=LONG_WAIT)
    page.locator("#rl-latency .js-plotly-plot").wait_for(timeout=60_000)
    page.locator("#rl-journey .js-plotly-plot").wait_for(timeout=60_000)

    before_rows = page.locator("#rl-lists .rl-col-before tr[data-doc]")
    assert before_rows.count() == 10 and after_rows.count() == 10
    assert page.locator("#rl-query textarea").input_value() == SEED_QUERY
    if default_cross_encoder():  # "auto", the default, found a cross-encoder
        assert "After: Cross-encoder" in page.locator("#rl-lists .rl-col-after h3").inner_text()
    else:
        assert "no cross-encoder ran" in page.locator("#rl-lists").inner_text()
    badges = page.locator("#rl-lists .rl-col-after .rl-move").all_inner_texts()
    assert all(re.match(r"^(▲ \d+|▼ \d+|=|★ new.*)$", b.strip()) for b in badges), badges
    assert "nDCG@10" in page.locator("#rl-summary").inner_text()
    latency = page.locator("#rl-latency").inner_text()
    assert "ms" in latency and ("Cross-encoder" in latency or not default_cross_encoder())

    # Hovering a document highlights it in both lists; clicking pins it.
    after_ids = [after_rows.nth(i).get_attribute("data-doc") for i in range(after_rows.count())]
    before_ids = [before_rows.nth(i).get_attribute("data-doc") for i in range(before_rows.count())]
    doc = next((d for d in before_ids if d in after_ids), before_ids[0])
    hovered = page.locator(f'#rl-lists .rl-col-before tr[data-doc="{doc}"]')
    hovered.hover()
    lit = page.locator("#rl-lists tr.rl-hover")
    assert {lit.nth(i).get_attribute("data-doc") for i in range(lit.count())} == {doc}
    assert lit.count() == (2 if doc in after_ids else 1)
    hovered.click()
    assert page.locator("#rl-lists tr.rl-selected").count() == lit.count()
    hovered.click()
    assert page.locator("#rl-lists tr.rl-selected").count() == 0
    page.mouse.move(5, 5)
    page.screenshot(path=str(ARTIFACTS / "search.png"), full_page=True)
    top = ARTIFACTS / "search_top.png"
    page.screenshot(path=str(top), clip={"x": 0, "y": 0, "width": 1440, "height": 1600}, full_page=True)
    if os.environ.get("RERANK_LENS_UPDATE_SCREENSHOT"):
        shutil.copy(top, ROOT / "assets" / "screenshot.png")  # the README's picture
    assert "Traceback" not in page.content()

    # A pinned document opens in the Chunks tab.
    hovered.click()
    page.get_by_role("tab", name="Chunks").click()
    page.wait_for_function(
        "doc => document.querySelector('#rl-chunk-info code')?.textContent === doc", arg=doc, timeout=120_000
    )
    page.get_by_role("tab", name="Search").click()


def spy_on_chunk_views(monkeypatch) -> list[str]:
    """The explain mode of every Chunks-tab scoring from now on (the server runs in this process)."""
    from reranker.ui import chunks_tab

    modes: list[str] = []
    real = chunks_tab.chunk_view

    signature = inspect.signature(real)

    def spy(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        modes.append(bound.arguments["explain_mode"])  # by name: the call's shape can change
        return real(*args, **kwargs)

    monkeypatch.setattr(chunks_tab, "chunk_view", spy)
    return modes


def test_long_document_chunk_scores(page, url, monkeypatch):
    # Open the app on the long-documents corpus with a query, as a link from elsewhere would: it runs that
    # query, not the seed query, without a click.
    page.goto(f"{url}?corpus=bundled:longdocs&q={quote(LONG_QUERY)}")
    page.locator("#rl-query textarea").wait_for()
    page.wait_for_function("document.querySelector('#rl-query textarea').value.includes('hard links')")
    page.locator("#rl-lists .rl-col-after tr[data-doc]").first.wait_for(timeout=LONG_WAIT)
    assert "longdocs" in page.locator("#rl-summary").inner_text()
    assert page.locator('#rl-lists .rl-col-before tr[data-doc="L01"]').count() == 1  # the document that answers it
    open_settings(page)
    set_dropdown(page, "rl-cross", reranker_spec())
    depth = page.locator("#rl-rerank-depth input[type=number]")
    depth.fill("5")
    depth.press("Enter")
    close_settings(page)
    explain_modes = spy_on_chunk_views(monkeypatch)
    page.locator("#rl-search").click()
    page.locator("#rl-lists .rl-col-after tr[data-doc]").first.wait_for(timeout=LONG_WAIT)
    # The hidden tab's windows are scored after the search, but its explanation waits until the tab is opened.
    deadline = time.monotonic() + LONG_WAIT / 1000
    while not explain_modes and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert explain_modes == ["off"]
    page.get_by_role("tab", name="Chunks").click()
    page.locator("#rl-chunk-text .rl-deciding-tag").wait_for(timeout=LONG_WAIT)
    page.locator("#rl-chunk-plot .js-plotly-plot").wait_for(timeout=60_000)
    bars = page.locator("#rl-chunk-plot g.point")
    assert bars.count() >= 4  # a 2,000+ token document in 400-token windows
    assert page.locator("#rl-chunk-text .rl-cut").count() == 1
    assert "windows of up to" in page.locator("#rl-chunk-info").inner_text()
    in_view = page.evaluate(
        """() => { const box = document.querySelector('#rl-chunk-text .rl-doctext').getBoundingClientRect();
                   const tag = document.querySelector('#rl-chunk-text .rl-deciding-tag').getBoundingClientRect();
                   return tag.top >= box.top && tag.bottom <= box.bottom; }"""
    )
    assert in_view  # the text is scrolled to the deciding window
    assert "nDCG@10" in page.locator("#rl-summary").inner_text()  # a judged query, opened by link
    page.screenshot(path=str(ARTIFACTS / "chunks.png"), full_page=True)

    # Why the deciding window scored as it did: each sentence's logit change as heat, with its legend.
    page.locator("#rl-chunk-text .rl-legend").wait_for(timeout=LONG_WAIT)
    assert explain_modes[-1] == "sentence"  # opening the tab explained the window
    legend = page.locator("#rl-chunk-text .rl-legend").inner_text()
    assert "logit change" in legend and "Why window" in legend and "fp32" in legend
    # On a CPU the variants go through in passes of <= 1,280 tokens (reranker.explain.CPU_PASS_TOKENS).
    assert re.search(r"in (one|\d+) forward pass(es)?|no forward pass \(every score from the cache\)", legend), legend
    heat = page.locator("#rl-chunk-text .rl-deciding.rl-heat")
    assert heat.count() >= 3
    titles = [heat.nth(i).get_attribute("title") for i in range(heat.count())]
    assert all(re.fullmatch(r"[-+]\d+\.\d{3} logit change \(occlusion\)", t) for t in titles), titles[:3]
    shaded = page.evaluate(
        "() => [...document.querySelectorAll('#rl-chunk-text .rl-heat')].filter(e => "
        "getComputedStyle(e).backgroundColor.match(/rgba\\(\\d+, \\d+, \\d+, 0\\.[1-9]/)).length"
    )
    assert shaded >= 1  # the strongest sentences are coloured, not only marked
    page.locator("#rl-chunk-text").scroll_into_view_if_needed()
    explain_png = ARTIFACTS / "explain.png"
    page.locator("#rl-chunk-text").screenshot(path=str(explain_png))
    if os.environ.get("RERANK_LENS_UPDATE_SCREENSHOT"):
        shutil.copy(explain_png, ROOT / "assets" / "explain.png")  # the README's picture of the explain view


def test_compare_two_models_and_unavailable_model_error(page, url):
    # Back on the knowledge corpus and the seed query: both models already scored it in the first test.
    page.goto(url)
    page.locator("#rl-query textarea").wait_for()
    page.get_by_role("tab", name="Compare").click()
    model_b = default_cross_encoder() or "all-MiniLM-L6-v2"
    set_dropdown(page, "rl-model-a", BUNDLED_MODEL)
    set_dropdown(page, "rl-model-b", model_b)
    page.locator("#rl-compare-btn").click()
    page.locator("#rl-agreement .rl-stat").first.wait_for(timeout=LONG_WAIT)
    page.locator("#rl-compare-latency .js-plotly-plot").wait_for(timeout=60_000)
    assert "Kendall τ" in page.locator("#rl-agreement").inner_text()
    assert page.locator("#rl-compare-lists tr[data-doc]").count() >= 2
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)

    page.get_by_role("tab", name="Search").click()
    open_settings(page)
    set_dropdown(page, "rl-cross", "cross-encoder/ms-marco-electra-base")
    close_settings(page)
    page.locator("#rl-search").click()
    toast = page.get_by_text("could not be loaded", exact=False).first
    toast.wait_for(timeout=60_000)
    assert "Fix:" in page.locator("body").inner_text()
    assert "Traceback" not in page.locator("body").inner_text()
    page.screenshot(path=str(ARTIFACTS / "error.png"), full_page=True)


def _open_judge_query(page, url):
    page.goto(f"{url}?q={quote(JUDGE_QUERY)}")
    page.locator("#rl-lists .rl-judge-bar").wait_for(timeout=LONG_WAIT)
    return page.locator("#rl-lists .rl-col-after tr[data-doc]")


def _ndcg(page) -> tuple[float, float] | None:
    found = re.search(r"nDCG@10 ([\d.]+) → ([\d.]+)", page.locator("#rl-summary").inner_text())
    return (float(found.group(1)), float(found.group(2))) if found else None


def _made_here(page, count: int) -> None:
    """Wait until the page's lists came back from the server with `count` judgments in the overlay."""
    page.wait_for_function(
        "n => (document.querySelector('#rl-lists .rl-overlay-count')?.innerText || '').startsWith(n + ' judgment')",
        arg=count, timeout=GRADE_WAIT,
    )


def _pressed(page, doc: str) -> list[str]:
    """The pressed grade of a document, once per list it is in."""
    rows = page.locator(f'#rl-lists tr[data-doc="{doc}"] .rl-grade.rl-on')
    return [rows.nth(i).get_attribute("data-grade") for i in range(rows.count())]


def _wait_for_overlay(state, key: str, expected: dict[str, int], qid: str, timeout: float = 120.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        grades = dict(state.judgments(key).load().qrels.get(qid, {}))
        if all(grades.get(d) == g for d, g in expected.items()) or time.monotonic() > deadline:
            return grades
        time.sleep(0.2)


def test_judge_documents_kept_over_a_reload_downloaded_and_not_lost_to_a_second_browser(page, served):
    url, state = served
    key = state.default_key
    qid = new_query_id(JUDGE_QUERY)
    after = _open_judge_query(page, url)
    docs = [after.nth(i).get_attribute("data-doc") for i in range(after.count())]
    assert len(docs) == 10
    assert page.locator("#rl-lists .rl-col-after .rl-unjudged").count() == 10  # nothing judged yet, all marked
    assert "no judgments for this query" in page.locator("#rl-summary").inner_text()
    assert "unjudged" in page.locator("#rl-lists .rl-judge-bar").inner_text()

    # Three grades: two clicks, one key press over a row. nDCG@10 appears with the first relevant grade and moves.
    first, second, last = docs[0], docs[1], docs[9]
    after.nth(0).locator('.rl-grade[data-grade="3"]').click()
    _made_here(page, 1)
    assert _ndcg(page)[1] == 1.0  # the only relevant document is the reranked list's first
    after.nth(1).locator('.rl-grade[data-grade="0"]').click()
    _made_here(page, 2)
    after.nth(9).hover()
    page.keyboard.press("2")
    _made_here(page, 3)
    moved = _ndcg(page)
    assert moved is not None and moved[1] < 1.0  # a relevant document at #10 of the reranked list
    assert (_pressed(page, first)[-1], _pressed(page, second)[-1], _pressed(page, last)[-1]) == ("3", "0", "2")
    assert page.locator("#rl-lists .rl-col-after .rl-unjudged").count() == 7
    assert "✎" in page.locator(f'#rl-lists .rl-col-after tr[data-doc="{first}"]').inner_text()

    page.mouse.move(5, 5)
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator("#rl-summary").bounding_box()
    judging_png = ARTIFACTS / "judging.png"
    page.screenshot(path=str(judging_png), clip={"x": 0, "y": max(box["y"] - 12, 0), "width": 1440, "height": 1180},
                    full_page=True)
    if os.environ.get("RERANK_LENS_UPDATE_SCREENSHOT"):
        shutil.copy(judging_png, ROOT / "assets" / "judging.png")  # docs/judging.md's picture

    # Reloaded, the page shows the grades and the same nDCG@10.
    after = _open_judge_query(page, url)
    page.wait_for_function(
        "doc => document.querySelector(`#rl-lists .rl-col-after tr[data-doc=\"${doc}\"] .rl-grade.rl-on`)",
        arg=first, timeout=GRADE_WAIT,
    )
    assert (_pressed(page, first)[-1], _pressed(page, second)[-1], _pressed(page, last)[-1]) == ("3", "0", "2")
    assert _ndcg(page) == moved

    # The download holds the grades, in BEIR's qrels layout.
    with page.expect_download(timeout=60_000) as download:
        page.locator("#rl-judge-download").click()
    text = Path(download.value.path()).read_text()
    assert text.startswith("query-id\tcorpus-id\tscore\n")
    assert {f"{qid}\t{first}\t3", f"{qid}\t{second}\t0", f"{qid}\t{last}\t2"} <= set(text.splitlines())

    # Removing grades: Backspace over a row, or its ×. The query is new, so no shipped grade comes back: the
    # rows are unjudged again, the overlay loses them, and nDCG@10 follows as for a grade.
    after.nth(9).hover()
    page.keyboard.press("Backspace")
    _made_here(page, 2)
    assert _ndcg(page)[1] == 1.0 and _pressed(page, last) == []  # the relevant document at #10 is gone
    after.nth(1).locator(".rl-ungrade").click()
    _made_here(page, 1)
    assert _pressed(page, second) == [] and page.locator("#rl-lists .rl-col-after .rl-unjudged").count() == 9
    assert dict(state.judgments(key).load().qrels[qid]) == {first: 3}

    # A second browser judges the same query at the same time: every grade of both is kept.
    other_context = page.context.browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        other = other_context.new_page()
        other_after = _open_judge_query(other, url)
        mine = {docs[2]: 1, docs[4]: 0}
        theirs = {docs[3]: 2, docs[5]: 3}
        for (doc_a, grade_a), (doc_b, grade_b) in zip(mine.items(), theirs.items(), strict=True):
            after.nth(docs.index(doc_a)).locator(f'.rl-grade[data-grade="{grade_a}"]').click()
            other_after.nth(docs.index(doc_b)).locator(f'.rl-grade[data-grade="{grade_b}"]').click()
        expected = {first: 3, **mine, **theirs}
        assert _wait_for_overlay(state, key, expected, qid) == expected
        # The same document graded in both: the last grade wins.
        after.nth(6).locator('.rl-grade[data-grade="1"]').click()
        assert _wait_for_overlay(state, key, {docs[6]: 1}, qid)[docs[6]] == 1
        other_after.nth(6).locator('.rl-grade[data-grade="3"]').click()
        expected[docs[6]] = 3
        assert _wait_for_overlay(state, key, expected, qid) == expected
        # Reloaded, the second browser shows every grade, the first browser's included.
        _open_judge_query(other, url)
        other.wait_for_function(
            "doc => document.querySelector(`#rl-lists .rl-col-after tr[data-doc=\"${doc}\"] .rl-grade.rl-on`)",
            arg=docs[6], timeout=GRADE_WAIT,
        )
        assert {d: int(_pressed(other, d)[-1]) for d in expected} == expected
        assert f"{len(expected)} judgments made here" in other.locator("#rl-lists .rl-judge-bar").inner_text()
    finally:
        other_context.close()
    assert "Traceback" not in page.content()


def test_broken_upload_names_the_line_and_keeps_the_corpus(page, url, tmp_path):
    page.goto(url)
    corpus = page.locator("#rl-corpus input")
    corpus.wait_for()
    before = corpus.input_value()
    bad = tmp_path / "team notes.jsonl"
    bad.write_text('{"_id": "n1", "text": "fine"}\n{"_id": "n2", "text": unquoted}\n')
    with page.expect_file_chooser() as chooser:
        page.locator("#rl-upload").click()
    chooser.value.set_files(str(bad))
    page.get_by_text("team notes.jsonl, line 2", exact=False).first.wait_for(timeout=60_000)
    assert "stays selected" in page.locator("body").inner_text()
    assert corpus.input_value() == before
    page.screenshot(path=str(ARTIFACTS / "upload_error.png"))
