"""Two visitors on one server, in two browser contexts of headless Chromium: A's uploads (documents, a BEIR zip,
a run) are invisible to B; A's share link opens A's corpus for B until A revokes it; a server restart (new
stores over the same folders, same address) gives A its workspace back. Screenshots go to test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest

from reranker.runs import format_run
from reranker.ui import build_demo, launch_options
from reranker.ui.state import AppState
from tests.support import CHROMIUM, CHROMIUM_ARGS, TOPIC_QUERIES, TOPICS, free_port, write_topics, zip_folder

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
WAIT = 240_000  # ms: a cold, shared CPU loads the model and encodes the corpus

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium (make test does)"),
]


def serve(root: Path, port: int):
    state = AppState(bundled_dir=root / "corpora", data_dirs=[], cache_dir=str(root / "emb"), upload_dir=root / "uploads",
                     judgments_dir=root / "judgments")
    demo = build_demo(state)
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True, **launch_options())
    return demo


def choose_file(page, button: str, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator(f"#{button}").click()
    chooser.value.set_files(str(path))


def picker(page) -> list[str]:
    """The corpus picker's choices, as the visitor sees them."""
    page.locator("#rl-corpus input").click()
    options = page.locator("[data-testid=dropdown-option]")
    options.first.wait_for()
    labels = [options.nth(i).get_attribute("aria-label") for i in range(options.count())]
    page.keyboard.press("Escape")
    page.locator("body").click(position={"x": 5, "y": 5})
    return labels


def corpus_is(page, prefix: str) -> None:
    page.wait_for_function("p => document.querySelector('#rl-corpus input')?.value.startsWith(p)", arg=prefix, timeout=WAIT)


@pytest.fixture()
def files(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("id,title,text\nm1,Merger,Confidential merger plans for the next quarter.\n")
    archive = zip_folder(write_topics(tmp_path / "topics"), tmp_path / "topics-beir.zip", top="topics")
    qid = next(iter(TOPIC_QUERIES))
    trec = tmp_path / "prod.trec"
    trec.write_text(format_run({qid: {d: float(len(TOPICS) - i) for i, d in enumerate(TOPICS)}}, "prod"))
    return secret, archive, trec


def test_two_visitors_see_only_their_own_uploads_until_one_shares_and_a_restart_keeps_them(tmp_path, files):
    from playwright.sync_api import sync_playwright

    write_topics(tmp_path / "corpora" / "knowledge")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    demo = serve(tmp_path, port)
    secret, archive, trec = files
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            a = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
            b = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
            a.goto(url)
            a.wait_for_function("document.querySelector('#rl-corpus-info')?.innerText.includes('documents')", timeout=WAIT)
            choose_file(a, "rl-upload", secret)
            corpus_is(a, "secret (upload, 1 docs)")
            choose_file(a, "rl-upload", archive)
            corpus_is(a, "topics-beir (upload, 8 docs")
            choose_file(a, "rl-upload-run", trec)
            a.wait_for_function("document.querySelector('#rl-corpus-info').innerText.includes('before list: uploaded run')",
                                timeout=WAIT)
            assert {"secret (upload, 1 docs)", "topics-beir (upload, 8 docs, judged: test)"} <= set(picker(a))

            # B, in another browser context, sees the shared corpora and nothing of A's.
            b.goto(url)
            b.wait_for_function("document.querySelector('#rl-corpus-info')?.innerText.includes('documents')", timeout=WAIT)
            assert picker(b) == ["knowledge (bundled)"]
            b.goto(f"{url}?corpus=upload:{'0' * 12}&q=merger")  # a deep link to someone's upload opens nothing of it
            b.wait_for_function("document.querySelector('#rl-query textarea')?.value === 'merger'", timeout=WAIT)
            assert b.locator("#rl-corpus input").input_value() == "knowledge (bundled)"
            assert "Confidential" not in b.content() and "before list" not in b.locator("#rl-corpus-info").inner_text()

            # A shares the BEIR corpus (with its run) read-only; B opens the link.
            a.locator("#rl-share").get_by_text("Share & judge").click()
            a.locator("#rl-judge-name textarea, #rl-judge-name input").first.fill("Ada")
            a.locator("#rl-share-button").click()
            a.wait_for_function("document.querySelector('#rl-share-link textarea, #rl-share-link input')?.value"
                                ".includes('?share=')", timeout=WAIT)
            link = a.locator("#rl-share-link textarea, #rl-share-link input").first.input_value()
            assert link.startswith(url) and len(link.rsplit("share=", 1)[1]) == 32
            a.screenshot(path=str(ARTIFACTS / "workspace_share.png"), full_page=False)
            b.goto(link)
            corpus_is(b, "topics-beir (upload, 8 docs, judged: test) — shared by link, read-only")
            b.wait_for_function("document.querySelector('#rl-corpus-info').innerText.includes('before list: uploaded run')",
                                timeout=WAIT)
            b.locator("#rl-lists .rl-col-after tr[data-doc]").first.wait_for(timeout=WAIT)
            assert b.locator("#rl-lists .rl-grade").count() == 0  # read-only: no grade buttons
            assert not any(label.startswith("secret") for label in picker(b))

            # A revokes it: the link opens nothing any more.
            a.locator("#rl-revoke").click()
            a.wait_for_function("document.querySelector('#rl-share-link textarea, #rl-share-link input')?.value === ''",
                                timeout=WAIT)
            b.goto(link)
            b.wait_for_function("document.querySelector('#rl-corpus-info')?.innerText.includes('documents')", timeout=WAIT)
            assert picker(b) == ["knowledge (bundled)"]

            # A restart: new stores over the same folders, at the same address; A's browser gets its workspace back.
            demo.close()
            demo = serve(tmp_path, port)
            a.goto(url)
            a.wait_for_function("document.querySelector('#rl-corpus-info')?.innerText.includes('documents')", timeout=WAIT)
            assert {"secret (upload, 1 docs)", "topics-beir (upload, BEIR)"} <= set(picker(a))
            a.locator("#rl-share").get_by_text("Share & judge").click()
            judge = a.locator("#rl-judge-name textarea, #rl-judge-name input").first
            a.wait_for_function("document.querySelector('#rl-judge-name textarea, #rl-judge-name input')?.value === 'Ada'",
                                timeout=WAIT)  # the judge's name, remembered by the browser
            assert judge.input_value() == "Ada"
            assert "Traceback" not in a.content() + b.content()
        finally:
            browser.close()
            demo.close()
