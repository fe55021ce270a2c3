"""Uploads in headless Chromium, as a person makes them: a BEIR zip whose judgments the Evaluate tab then
evaluates, and a TREC run that becomes the before list of its queries (Search says so, Evaluate takes it
as the baseline) until it is dropped.

Screenshots go to test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reranker.runs import format_run
from reranker.ui import build_demo, launch_options
from reranker.ui.evaluate_tab import EvaluationInputs, evaluate_view
from reranker.ui.settings import Settings
from reranker.ui.state import SEED_QUERY, AppState
from tests.support import CHROMIUM, CHROMIUM_ARGS, TOPIC_QUERIES, TOPICS, free_port, set_dropdown, write_topics, zip_folder

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
LONG_WAIT = 480_000  # ms: a cold, shared CPU loads the models, encodes the corpus and compiles ranx's metrics

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium (make test does)"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    write_topics(root / "corpora" / "knowledge")  # a small corpus for the page to open on
    state = AppState(bundled_dir=root / "corpora", data_dirs=[], cache_dir=str(root / "emb"), upload_dir=root / "uploads")
    # As the app's warm-up does, and more: ranx compiles its metrics and significance tests (minutes on a busy
    # CPU) once per process; an evaluation of the opening corpus pays for that before the page waits on it.
    inputs = EvaluationInputs("bundled:knowledge", "test", ["bm25", "fused"], "fused", "student", 0, Settings().overrides())
    evaluate_view(state, inputs)
    demo = build_demo(state)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True, **launch_options())
    yield url, state
    demo.close()


@pytest.fixture(scope="module")
def page(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(served[0])
        yield page
        browser.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The topics dataset as a BEIR zip (in one top folder) and a run ranking six of its eight queries."""
    root = tmp_path_factory.mktemp("files")
    archive = zip_folder(write_topics(root / "topics"), root / "topics-beir.zip", top="topics")
    run = {}
    for qid, (_, relevant) in list(TOPIC_QUERIES.items())[-6:]:  # q-attention (the seed query) among them
        others = [d for d in TOPICS if d != relevant]
        order = [*others[:2], relevant, *others[2:]]
        run[qid] = {doc: float(len(order) - i) for i, doc in enumerate(order)}
    trec = root / "prod.trec"
    trec.write_text(format_run(run, "prod"))
    return archive, trec


def choose_file(page, button: str, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator(f"#{button}").click()
    chooser.value.set_files(str(path))


def evaluate(page, expected: str, *specs: str) -> str:
    """Evaluate `specs` in the Evaluate tab; the metrics table once it says `expected`."""
    page.get_by_role("tab", name="Evaluate").click()
    for i, spec in enumerate(specs, start=1):
        set_dropdown(page, f"rl-eval-config-{i}", spec)
    page.locator("#rl-eval-run").click()
    page.wait_for_function(
        "text => document.querySelector('#rl-eval-table')?.innerText.includes(text)", arg=expected, timeout=LONG_WAIT
    )
    return page.locator("#rl-eval-table").inner_text()


def test_an_uploaded_beir_zip_is_evaluated_on_its_judgments(page, files):
    page.wait_for_function("document.querySelector('#rl-corpus-info')?.innerText.includes('documents')", timeout=120_000)
    archive, _ = files
    choose_file(page, "rl-upload", archive)
    corpus = page.locator("#rl-corpus input")
    page.wait_for_function(
        "() => document.querySelector('#rl-corpus input').value.startsWith('topics-beir (upload, 8 docs, judged: test)')",
        timeout=60_000,
    )
    info = page.locator("#rl-corpus-info")
    page.wait_for_function("() => document.querySelector('#rl-corpus-info').innerText.includes('(test)')", timeout=60_000)
    assert "relevance judgments for 8 queries (test)" in info.inner_text()

    table = evaluate(page, "judged queries of topics-beir", "bm25", "fused")
    assert "8 judged queries of topics-beir (upload, 8 docs, judged: test) (test)" in table
    assert "fused (baseline)" in table and "bm25" in table and "ndcg@10" in table
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "upload_beir_evaluate.png"), full_page=True)
    assert "Traceback" not in page.content() and corpus.input_value().startswith("topics-beir")


def test_an_uploaded_run_is_the_before_list_and_the_baseline_until_dropped(page, files):
    """Runs after the test above (same page, the uploaded corpus selected)."""
    _, trec = files
    page.get_by_role("tab", name="Search").click()
    page.locator("#rl-query textarea").fill(SEED_QUERY)
    choose_file(page, "rl-upload-run", trec)
    page.wait_for_function(
        "() => document.querySelector('#rl-corpus-info').innerText.includes('before list: uploaded run prod.trec (6 queries)')",
        timeout=60_000,
    )
    # The query in the box is answered again, from the run's list.
    before = page.locator("#rl-lists .rl-col-before h3")
    page.wait_for_function(
        "() => document.querySelector('#rl-lists .rl-col-before h3')?.innerText.includes('uploaded run prod.trec')",
        timeout=LONG_WAIT,
    )
    assert before.inner_text() == "Before: uploaded run prod.trec"
    assert "before: uploaded run prod.trec" in page.locator("#rl-notes").inner_text()
    rows = page.locator("#rl-lists .rl-col-before tr[data-doc]")
    assert rows.nth(2).get_attribute("data-doc") == "attention"  # the run put the relevant document third
    page.screenshot(path=str(ARTIFACTS / "upload_run_search.png"), full_page=True)

    table = evaluate(page, "run (baseline)", "fused", "bm25")
    assert "6 judged queries of topics-beir" in table and "fused" in table and "bm25" in table
    assert "Before reranking: the uploaded run prod.trec" in page.locator("#rl-eval-notes").inner_text()
    page.screenshot(path=str(ARTIFACTS / "upload_run_evaluate.png"), full_page=True)

    page.get_by_role("tab", name="Search").click()
    page.locator("#rl-drop-run").click()
    page.wait_for_function(
        "() => document.querySelector('#rl-lists .rl-col-before h3')?.innerText.includes('Fused')", timeout=LONG_WAIT
    )
    assert "uploaded run" not in page.locator("#rl-corpus-info").inner_text()
    assert not page.locator("#rl-drop-run").is_visible()
    assert "Traceback" not in page.content()

