"""The app launched on localhost and driven through gradio_client, as a script or a second app would:
every input named and described, docs/app.md's client example, search, chunk and compare endpoints,
uploads, errors, and 8 concurrent clients each getting its own answer."""

from __future__ import annotations

import ast
import html
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from reranker.ui import build_demo, launch_options
from reranker.ui.settings import SETTING_FIELDS, SETTING_HELP, Settings
from reranker.ui.state import SEED_QUERY, AppState
from tests.conftest import BUNDLED_MODEL
from tests.support import TOPIC_QUERIES, free_port, registered_endpoints, write_topics, zip_folder

KEY = "bundled:knowledge"
APP_DOC = Path(__file__).resolve().parents[1] / "docs" / "app.md"
EXAMPLE_URL = "http://127.0.0.1:7860/"


def settings(**changes) -> list:
    values = Settings(**{"top_n": 5, "cross_encoder": "none", **changes})
    return [getattr(values, f) for f in SETTING_FIELDS]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    write_topics(root / "corpora" / "knowledge")
    state = AppState(bundled_dir=root / "corpora", data_dirs=[], cache_dir=str(root / "emb"), upload_dir=root / "uploads")
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
    assert names == {f"/{name}" for name in registered_endpoints()}  # what tests/test_docs_truth.py checks the docs with


def test_every_input_of_every_endpoint_has_a_name_and_a_description(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/search", "/chunks", "/compare", "/evaluate", "/compare_on_query", "/snapshot", "/upload"} <= set(endpoints)
    for name, endpoint in endpoints.items():
        for parameter in endpoint["parameters"]:
            assert not re.fullmatch(r"param_\d+", parameter["parameter_name"]), (name, parameter["label"])
            assert parameter["python_type"]["description"], (name, parameter["parameter_name"])
    search = endpoints["/search"]
    assert [p["parameter_name"] for p in search["parameters"]] == ["corpus_key", "query", *SETTING_FIELDS]
    described = {p["parameter_name"]: p["python_type"]["description"] for p in search["parameters"]}
    assert described["rerank_depth"] == SETTING_HELP["rerank_depth"] == "Fused candidates the cross-encoder scores."
    assert '"none" to stop after fusion' in described["cross_encoder"]  # the page's word, not PipelineConfig's None
    assert {"blend", "latency_budget_ms"} <= described.keys() and not {"interpolation", "budget_ms"} & described.keys()
    assert [r["label"] for r in search["returns"]] == ["Summary", "Notes", "Lists", "Rank journey", "Latency", "Document"]
    names = [p["parameter_name"] for p in endpoints["/evaluate"]["parameters"]]
    assert names[5:9] == [f"configuration_{i}" for i in range(1, 5)] and names[9:] == list(SETTING_FIELDS)
    printed = client.view_api(print_info=False, return_format="str")
    assert "param_" not in printed
    # The line's content, not gradio_client's column spacing.
    line = r"rerank_depth: int \(not required, defaults to:\s*30\)\s*\(Fused candidates the cross-encoder scores\.\)"
    assert re.search(line, printed)


def test_named_arguments_leave_the_other_settings_at_the_page_defaults(client):
    summary, _notes, lists, *_ = client.predict(
        corpus_key=KEY, query=SEED_QUERY, cross_encoder="none", top_n=3, blend="0", latency_budget_ms=0, api_name="/search"
    )
    assert final_order(lists)[0] == "attention" and len(final_order(lists)) == 3
    assert "nDCG@10" in summary
    # The page's old parameter names are gone (docs/app.md says so): gradio_client refuses them before calling.
    with pytest.raises(TypeError, match="interpolation"):
        client.predict(corpus_key=KEY, query=SEED_QUERY, interpolation="0", api_name="/search")


def readme_client_example() -> str:
    app_section = APP_DOC.read_text(encoding="utf-8").split("<!-- section:app -->", 1)[1].split("<!-- /section:app -->")[0]
    blocks = [b for b in re.findall(r"^```python\n(.*?)^```", app_section, re.S | re.M) if "gradio_client" in b]
    assert len(blocks) == 1, "docs/app.md's app section should hold one gradio_client example"
    return blocks[0]


def test_readme_client_example_runs_with_the_names_view_api_shows(app, client, offline_auto, capsys):
    code = readme_client_example()
    call = next(
        node for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Call) and any(k.arg == "api_name" for k in node.keywords)
    )
    used = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert used.pop("api_name") == "/search" and not call.args  # named arguments only
    parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/search"]["parameters"]
    assert set(used) <= {p["parameter_name"] for p in parameters}
    assert used["corpus_key"] == KEY and used["query"] == SEED_QUERY  # what the test app serves, too
    assert EXAMPLE_URL in code
    exec(compile(code.replace(EXAMPLE_URL, app[0]), "docs/app.md client example", "exec"), {"__name__": "readme"})
    printed = ast.literal_eval(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(printed) == used["top_n"] and "attention" in printed


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
    _fig, text, info = client.predict(KEY, SEED_QUERY, "attention", "sentence", *cross, api_name="/chunks")
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


def test_a_beir_zip_and_its_run_through_the_api(client, tmp_path):
    """/upload takes a BEIR zip, /upload_run a run for it (refused with file and line first), /drop_run drops it."""
    archive = zip_folder(write_topics(tmp_path / "beir"), tmp_path / "beir.zip", top="beir")
    key = client.predict(handle_file(str(archive)), KEY, api_name="/upload")["value"]
    bad = tmp_path / "bad.trec"
    bad.write_text("q-tides Q0 tides 1 2.0 x\nq-tides Q0 moon 2 1.0 x\n")
    with pytest.raises(Exception) as info:
        client.predict(handle_file(str(bad)), key, api_name="/upload_run")
    message = html.unescape(str(info.value))  # the page's toast renders HTML, so messages come escaped
    assert "Run rejected; the before list stays BM25 + dense fusion." in message
    assert "bad.trec, line 2: document 'moon' is not in the dataset's corpus" in message
    good = tmp_path / "good.trec"
    good.write_text("q-tides Q0 volcano 1 2.0 x\nq-tides Q0 tides 2 1.0 x\n")
    info_html = client.predict(handle_file(str(good)), key, api_name="/upload_run")  # the button's visibility is not returned
    assert "before list: uploaded run good.trec (1 queries)" in info_html
    lists = client.predict(key, TOPIC_QUERIES["q-tides"][0], *settings(), api_name="/search")[2]
    assert "Before: uploaded run good.trec" in lists
    info_html = client.predict(key, api_name="/drop_run")
    assert "uploaded run" not in info_html


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
    tabs, corpus, query = named(extended, "opener")[-1].fn(SEED_QUERY).values()  # keyed by component
    assert tabs["selected"] == "search" and corpus["value"] == KEY and query["value"] == SEED_QUERY
    # the link runs the search after switching tabs: one more search event than without the extra tab
    assert len(named(extended, "on_search")) == len(named(plain, "on_search")) + 1
    assert len(named(extended, "opener")) == len(named(plain, "opener")) + 1


def test_the_page_without_the_chunks_tab_searches_without_error(app):
    """Handlers return updates keyed by component: leaving a tab out shifts nobody's outputs."""
    from reranker.ui import DEFAULT_TABS
    from reranker.ui.chunks_tab import build_chunks_tab

    _, state = app
    demo = build_demo(state, tabs=[t for t in DEFAULT_TABS if t is not build_chunks_tab])
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True, **launch_options())
    try:
        returned = Client(url, verbose=False).predict(KEY, SEED_QUERY, *settings(), api_name="/search")
        assert len(returned) == 5  # summary, notes, lists, journey, latency: no document picker
        assert final_order(returned[2])[0] == "attention" and "nDCG@10" in returned[0]
    finally:
        demo.close()


def test_an_api_client_s_upload_is_its_own_until_it_shares_it(app, tmp_path):
    """Two API clients are two sessions, each with its own workspace: one's upload is invisible to the other, a
    share link opens it read-only, a revoked, guessed or path-like key gets nothing."""
    url, _ = app
    owner, other = Client(url, verbose=False), Client(url, verbose=False)
    secret = tmp_path / "secret.csv"
    secret.write_text("id,title,text\nm1,Merger,Confidential merger plans for the next quarter.\n")
    update = owner.predict(handle_file(str(secret)), KEY, api_name="/upload")
    key = update["value"]
    assert final_order(owner.predict(key, "merger plans", *settings(), api_name="/search")[2]) == ["m1"]
    refused = "unknown corpus|not in the list of choices"  # Gradio itself refuses a key this session was never given
    with pytest.raises(Exception, match=refused):
        other.predict(key, "merger plans", *settings(), api_name="/search")
    note = tmp_path / "note.md"
    note.write_text("# Note\nThe other client's own note.")
    choices = other.predict(handle_file(str(note)), KEY, api_name="/upload")["choices"]
    assert key not in {value for _, value in choices} and len([v for _, v in choices if v.startswith("upload:")]) == 1
    link, links = owner.predict(key, "merger plans", "read", api_name="/share")
    token = link.rsplit("share=", 1)[1]
    assert len(token) == 32 and links["value"] == token
    for hostile in ("A" * 32, "../../../etc/passwd", token[:-1], token + "x", f"{token}/.."):
        with pytest.raises(Exception, match="unknown or was revoked"):
            other.predict(hostile, api_name="/open_share")
    for hostile in ("share:" + "A" * 32, "share:../../../etc/passwd", f"upload:{'0' * 12}", "../" + key, key + "/.."):
        with pytest.raises(Exception, match=refused):
            other.predict(hostile, "merger plans", *settings(), api_name="/search")
    shared = other.predict(token, api_name="/open_share")["value"]
    assert shared == f"share:{token}"
    assert final_order(other.predict(shared, "merger plans", *settings(), api_name="/search")[2]) == ["m1"]
    with pytest.raises(Exception, match=r"not one of your share links|not in the list of choices"):
        other.predict(token, api_name="/revoke_share")
    owner.predict(token, api_name="/revoke_share")
    with pytest.raises(Exception, match="revoked"):
        other.predict(shared, "merger plans", *settings(), api_name="/search")
