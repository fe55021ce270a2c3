"""The app launched on localhost and driven through gradio_client, as a script or a second app would:
search, chunk and compare endpoints, uploads, errors, and 8 concurrent clients each getting its own answer."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client, handle_file

from reranker.ui import build_demo, launch_options
from reranker.ui.settings import SETTING_FIELDS, Settings
from reranker.ui.state import SEED_QUERY, AppState
from tests.conftest import BUNDLED_MODEL
from tests.support import TOPIC_QUERIES, free_port, write_topics

KEY = "bundled:knowledge"


def settings(**changes) -> list:
    values = Settings(**{"top_n": 5, "cross_encoder": "none", **changes})
    return [getattr(values, f) for f in SETTING_FIELDS]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    write_topics(root / "corpora" / "knowledge")
    state = AppState(bundled_dir=root / "corpora", data_dirs=[], cache_dir=str(root / "emb"))
    state.pipeline(KEY)  # index once, so the concurrent requests below all hit a warm pipeline
    demo = build_demo(state)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True, **launch_options())
    yield url, state
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    return Client(app[0], verbose=False)


def final_order(lists_html: str) -> list[str]:
    return re.findall(r'data-doc="([^"]+)"', lists_html.split('rl-col-after"', 1)[1])


def test_api_lists_the_named_endpoints(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/search", "/chunks", "/compare", "/upload"} <= names


def test_search_returns_lists_figures_and_document_choices(client):
    summary, notes, lists, journey, latency, doc = client.predict(KEY, SEED_QUERY, *settings(), api_name="/search")
    assert final_order(lists)[0] == "attention"
    assert "nDCG@10" in summary and "Traceback" not in summary + notes + lists
    assert journey and latency  # plotly figures serialised for the client
    assert doc["value"] == "attention" and doc["choices"][0] == ["#1 Transformer attention", "attention"]


def test_eight_concurrent_clients_each_get_their_own_answer(app):
    """Eight clients at once, reranking with the bundled cross-encoder: each gets the fused top document
    its query is about, and a reranked order identical to what the package computes for that query."""
    url, state = app
    cross = settings(cross_encoder=BUNDLED_MODEL, rerank_depth=8)

    def ask(item):
        query, expected = item
        result = Client(url, verbose=False).predict(KEY, query, *cross, api_name="/search")
        before = re.findall(r'data-doc="([^"]+)"', result[2].split('rl-col-before"', 1)[1].split("</table>", 1)[0])
        return query, expected, before[0], final_order(result[2])

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, TOPIC_QUERIES.values()))
    assert len(answers) == 8
    assert all(expected == fused_top for _, expected, fused_top, _ in answers), answers
    pipeline = state.pipeline(KEY)
    for query, _, _, reranked in answers:
        direct = pipeline.search(query, cross_encoder=BUNDLED_MODEL, rerank_depth=8, top_n=5)
        assert reranked == direct.after.doc_ids()[:5], query


def test_chunks_and_compare_endpoints(client):
    cross = settings(cross_encoder=BUNDLED_MODEL)
    _fig, text, info = client.predict(KEY, SEED_QUERY, "attention", *cross, api_name="/chunks")
    assert "window 1 decided the score" in text and "Transformer attention" in info
    agreement, lists, _latency = client.predict(
        KEY, SEED_QUERY, "Cross-encoders", BUNDLED_MODEL, "all-MiniLM-L6-v2", *cross, api_name="/compare"
    )
    assert "Kendall τ" in agreement and lists.count("data-doc=") == 10


def test_errors_reach_the_client_as_messages_without_traceback(client):
    with pytest.raises(Exception) as info:
        client.predict(KEY, "   ", *settings(), api_name="/search")
    assert "query is empty" in str(info.value) and "Traceback" not in str(info.value)
    with pytest.raises(Exception) as info:
        client.predict(KEY, SEED_QUERY, *settings(cross_encoder="cross-encoder/ms-marco-TinyBERT-L2-v2"), api_name="/search")
    assert "Fix:" in str(info.value)


def test_upload_rejects_a_broken_file_and_keeps_the_corpus(client, app, tmp_path):
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"_id": "1", "text": "ok"}\n{"_id": 2 "text": "no comma"}\n')
    assert client.predict(handle_file(str(bad)), KEY, api_name="/upload")["value"] == KEY
    good = tmp_path / "fruit.csv"
    good.write_text("id,title,text\nap,Apples,Apples grow on trees in orchards.\nba,Bananas,Bananas are yellow tropical fruit.\n")
    update = client.predict(handle_file(str(good)), KEY, api_name="/upload")
    key = update["value"]
    assert key.startswith("upload:") and [label for label, value in update["choices"] if value == key] == [
        "fruit (upload, 2 docs)"
    ]
    lists = client.predict(key, "yellow tropical fruit", *settings(), api_name="/search")[2]
    assert final_order(lists)[0] == "ba"


def test_extra_tab_can_link_a_query_into_search(app):
    """Another view adds a tab and opens Search on a corpus and query with one call."""
    import gradio as gr

    from reranker.ui import DEFAULT_TABS

    _, state = app

    def extra_tab(ctx):
        with gr.Tab("Extra", id="extra-test-tab"):
            pick = gr.Dropdown([q for q, _ in TOPIC_QUERIES.values()], label="Query")
            ctx.link_to_search(pick.select, lambda q: (KEY, q), [pick])

    def named(demo, name):
        return [fn for fn in demo.fns.values() if getattr(fn.fn, "__name__", "") == name]

    plain = build_demo(state)
    extended = build_demo(state, tabs=[*DEFAULT_TABS, extra_tab])
    tabs, corpus, query = named(extended, "opener")[-1].fn(SEED_QUERY)
    assert tabs["selected"] == "search" and corpus["value"] == KEY and query["value"] == SEED_QUERY
    # the link runs the search after switching tabs: one more search event than without the extra tab
    assert len(named(extended, "on_search")) == len(named(plain, "on_search")) + 1
    assert len(named(extended, "opener")) == len(named(plain, "opener")) + 1
