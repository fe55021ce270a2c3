"""The page: corpus, query and settings on top; the tabs Search, Chunks, Compare, Evaluate and Trade-offs below.

`build_demo()` scans the corpus folders and reads the default corpus (its example queries fill the picker);
it builds no index and loads no model. The server (`reranker app`) then warms up in the background
(`reranker.ui.state.warm_up`: the default corpus's index, the default cross-encoder, the metrics), so the first
query pays only for inference; a query asked before that ends says so and waits for it.

Every tab is a builder `build_<name>_tab(ctx: AppContext)` in its own module (see
`reranker.ui.context`); `DEFAULT_TABS` lists them, and another view is one more builder:
`build_demo(tabs=[*DEFAULT_TABS, build_my_tab])`. This module wires what spans tabs: the search
(button, Enter, example queries, the latency budget), uploads (a corpus; a TREC run that becomes the corpus's
"before" list, `docs/uploads.md`), opening on an answer (the seed query, or a deep
link's `/?corpus=<key>&q=<query>[&tab=...]`), links from a tab into Search (`ctx.link_to_search`) and row
clicks that open a document in Chunks. Every input of a public endpoint is described for API clients
(`context.describe`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr
from gradio.components import Component

from reranker.chunking import AGGREGATIONS
from reranker.corpus_keys import DATA, bundled_key, upload_key
from reranker.distribution import bundled
from reranker.errors import ConfigError, RerankLensError
from reranker.ui.chunks_tab import build_chunks_tab
from reranker.ui.compare_tab import build_compare_tab
from reranker.ui.context import PRIVATE, AppContext, TabBuilder, describe
from reranker.ui.evaluate_tab import build_evaluate_tab
from reranker.ui.render import corpus_info_html, esc
from reranker.ui.search_tab import build_search_tab
from reranker.ui.settings import (
    BLEND_CHOICES,
    SCORE_MODES,
    SETTING_FIELDS,
    SETTING_HELP,
    Settings,
    model_choices,
    page_message,
    user_errors,
)
from reranker.ui.state import UPLOAD_SUFFIXES, AppState, RequestScoped, example_queries
from reranker.ui.tradeoffs_tab import build_tradeoffs_tab
from reranker.ui.workspaces import SHARE_MODES

ASSETS = bundled("assets")
CSS_PATH = ASSETS / "app.css"  # the page's one style sheet, every tab's styles included
CONCURRENCY = int(os.environ.get("RERANK_LENS_CONCURRENCY", "4"))  # events run at once (per event kind)
# Events waiting beyond this are refused at once; the page then says "This application is currently busy.
# Please try again." (Gradio's words) and an API client gets gradio_client's QueueError, never a traceback.
QUEUE_SIZE = int(os.environ.get("RERANK_LENS_QUEUE", "64"))
MAX_UPLOAD = "50mb"

# The lists, plots and badges are designed on white; keep the page light when the OS prefers dark.
FORCE_LIGHT_JS = "() => { document.body.classList.remove('dark'); }"

INTRO = (
    '<div class="rl-header"><div><h1>Rerank Lens</h1>'
    "<p>What BM25, dense retrieval, reciprocal rank fusion and a cross-encoder do to one query: "
    "the fused list before reranking next to the list after it, how each document moved, what every stage cost, "
    "and which part of a long document decided its score.</p></div></div>"
)


DEFAULT_TABS: tuple[TabBuilder, ...] = (
    build_search_tab, build_chunks_tab, build_compare_tab, build_evaluate_tab, build_tradeoffs_tab
)


def _settings_panel(defaults: Settings) -> list[Component]:
    """The settings widgets, in `SETTING_FIELDS` order."""
    with gr.Accordion("Models & settings", open=False, elem_id="rl-settings"):
        with gr.Row():
            bi = gr.Dropdown(model_choices(False), value=defaults.bi_encoder, label="Bi-encoder (dense retrieval)",
                             allow_custom_value=True, info="A hub id or a local directory.", elem_id="rl-bi")
            cross = gr.Dropdown(model_choices(True), value=defaults.cross_encoder, label="Cross-encoder (reranker)",
                                allow_custom_value=True, info="A hub id, a local directory, auto or none.", elem_id="rl-cross")
        with gr.Row():
            depth = gr.Slider(10, 1000, value=defaults.retrieval_depth, step=10, precision=0, label="Retrieval depth",
                              info="Documents BM25 and dense each return.")
            rrf_k = gr.Slider(0, 200, value=defaults.rrf_k, step=1, precision=0, label="RRF k",
                              info="Fusion score = Σ 1/(k + rank); larger k flattens rank differences.")
            rerank_depth = gr.Slider(5, 200, value=defaults.rerank_depth, step=5, precision=0, label="Rerank depth",
                                     info="Fused documents the cross-encoder scores.", elem_id="rl-rerank-depth")
            top_n = gr.Slider(3, 50, value=defaults.top_n, step=1, precision=0, label="Top-n shown")
        with gr.Row():
            chunk = gr.Slider(32, 512, value=defaults.chunk_tokens, step=16, precision=0, label="Chunk size (tokens)",
                              info="Capped by what the model reads with the query.")
            overlap = gr.Slider(0, 256, value=defaults.chunk_overlap, step=8, precision=0, label="Chunk overlap (tokens)")
            aggregation = gr.Radio(list(AGGREGATIONS), value=defaults.aggregation, label="Chunk aggregation",
                                   info="max = best window (MaxP); first = what truncation does.")
            score_mode = gr.Radio(list(SCORE_MODES), value=defaults.score_mode, label="Cross-encoder scores",
                                  info="raw logit, or sigmoid(logit) between 0 and 1.")
        with gr.Row():
            blend = gr.Dropdown(list(BLEND_CHOICES), value=defaults.blend, label="Blend with fused score",
                                allow_custom_value=True, elem_id="rl-blend",
                                info="Score = (1−w)·z(cross-encoder) + w·z(fused), z-scored per query; 0 = "
                                     "cross-encoder only. A fine-tuned model's card recommends a w.")
            latency_budget_ms = gr.Number(value=defaults.latency_budget_ms, minimum=0, precision=0,
                                          label="Latency budget (ms, 0 = none)", elem_id="rl-latency-budget-ms",
                                          info="Rerank depth shrinks so the whole query fits; the notes say what was cut.")
    widgets = {
        "bi_encoder": bi,
        "cross_encoder": cross,
        "retrieval_depth": depth,
        "rrf_k": rrf_k,
        "rerank_depth": rerank_depth,
        "top_n": top_n,
        "chunk_tokens": chunk,
        "chunk_overlap": overlap,
        "aggregation": aggregation,
        "score_mode": score_mode,
        "blend": blend,
        "latency_budget_ms": latency_budget_ms,
    }
    missing = set(SETTING_FIELDS) ^ set(widgets)
    if missing:
        raise RuntimeError(f"the settings panel and Settings disagree on {sorted(missing)}: add a widget per field")
    return [describe(widgets[name], SETTING_HELP[name]) for name in SETTING_FIELDS]


SHARE_CHOICES = [("read-only", "read"), ("with judging", "judge")]
WORKSPACE_STORAGE = "rerank-lens-workspace"  # the browser's localStorage keys
JUDGE_STORAGE = "rerank-lens-judge"


def _browser_secret(app: AppState) -> str:
    """The key the browser's copy of the workspace id is encrypted with: stable across restarts (Gradio's
    default is random per process, which would lose every workspace at a restart)."""
    return hmac.new(app.workspaces.secret, b"browser-state", hashlib.sha256).hexdigest()[:32]


def _share_choices(visitor: Any) -> list[tuple[str, str]]:
    return [(share.describe(), share.token) for share in visitor.shares()]


def _page_url(request: gr.Request | None) -> str:
    """The page's address as the browser has it (behind a proxy too), without its query string."""
    headers = getattr(request, "headers", None) or {}
    referer = headers.get("referer") or ""
    if referer.startswith(("http://", "https://")):
        return referer.split("?", 1)[0].split("#", 1)[0]
    return "/"


def build_demo(state: AppState | None = None, tabs: Sequence[TabBuilder] = DEFAULT_TABS) -> gr.Blocks:
    """The whole app as a gr.Blocks with its queue configured; launch with `launch_options()`.

    Every request works on its visitor's view of `state` (`RequestScoped`): the shared corpora, the
    visitor's own workspace and the share links they opened."""
    app = state or AppState()
    state = RequestScoped(app)  # type: ignore[assignment]
    default_key = app.corpora.default_key
    examples = example_queries(app.dataset(default_key)) if default_key else []
    shared_choices = [(s.label, s.key) for s in app.corpora.sources()]  # a visitor's own appear once the page opens
    # Gradio keeps uploaded and returned files in its own cache: remove those older than a day, hourly.
    with gr.Blocks(title="Rerank Lens", fill_width=False, delete_cache=(3600, 86400)) as demo:
        gr.HTML(INTRO)
        workspace_state = gr.BrowserState(None, storage_key=WORKSPACE_STORAGE, secret=_browser_secret(app))
        judge_state = gr.BrowserState("", storage_key=JUDGE_STORAGE, secret=_browser_secret(app))
        with gr.Row(equal_height=False, elem_id="rl-corpus-row"):
            corpus = gr.Dropdown(shared_choices, value=default_key, label="Corpus", scale=4, elem_id="rl-corpus",
                                 info="Bundled corpora, BEIR folders found in the data directory, and your uploads "
                                      "(only you see them).")
            upload = gr.UploadButton("Upload documents…", file_types=list(UPLOAD_SUFFIXES), file_count="single",
                                     type="filepath", scale=1, min_width=180, elem_id="rl-upload", variant="secondary")
            # Run files often have no extension of their own (run.bm25.dev): any file, checked line by line.
            run_upload = gr.UploadButton("Upload a run…", file_count="single", type="filepath", scale=1, min_width=150,
                                         elem_id="rl-upload-run", variant="secondary")
            drop_run = gr.Button("Drop the run", visible=False, scale=0, min_width=120, elem_id="rl-drop-run",
                                 variant="secondary")
        describe(corpus, f'The corpus, by key: "{bundled_key("knowledge")}", "{bundled_key("longdocs")}", '
                         f'"{DATA}:<folder>" for a BEIR folder in the data directory, or the '
                         f'"{upload_key("<hash>")}" key that /upload returns.')
        describe(upload, "A file of documents (.jsonl, .csv, .txt or .md), a .zip of such files, or a BEIR dataset as a "
                         ".zip (corpus.jsonl, queries.jsonl, qrels/<split>.tsv, at its top or in one folder) whose "
                         "judgments /evaluate then uses; 50 MB at most.")
        describe(run_upload, "A TREC run for the selected corpus (qid Q0 docid rank score tag per line; its query ids "
                             "from the corpus's queries.jsonl): its lists become the before list of the queries it "
                             "ranks, in Search and Evaluate, in place of BM25 + dense fusion.")
        corpus_info = gr.HTML(elem_id="rl-corpus-info")
        with gr.Accordion("Share & judge", open=False, elem_id="rl-share"):
            with gr.Row(equal_height=False):
                judge_name = gr.Textbox(label="Judge", placeholder="Your name: every grade you give is saved with it",
                                        scale=2, max_lines=1, elem_id="rl-judge-name",
                                        info="Asked once; this browser remembers it (with a login, the user name).")
                share_mode = gr.Radio(SHARE_CHOICES, value="read", label="Share the corpus, its run and the query",
                                      scale=2, elem_id="rl-share-mode")
                share = gr.Button("Share", scale=0, min_width=100, elem_id="rl-share-button", variant="secondary")
            with gr.Row(equal_height=False):
                share_link = gr.Textbox(label="Share link", interactive=False, scale=3, buttons=["copy"],
                                        elem_id="rl-share-link",
                                        info="Whoever holds it opens this corpus, its run and the query, until you revoke it.")
                share_list = gr.Dropdown([], value=None, label="Your share links", scale=2, elem_id="rl-share-list")
                revoke = gr.Button("Revoke", scale=0, min_width=100, elem_id="rl-revoke", variant="stop")
        describe(share_mode, f"What whoever holds the link may do: {' or '.join(SHARE_MODES)} (grade too).")
        describe(share_list, "The token of one of your share links.")
        with gr.Row(equal_height=False, elem_id="rl-query-row"):
            query = gr.Textbox(label="Query", placeholder="Ask something about the corpus…", scale=5, elem_id="rl-query",
                               max_lines=3, value=examples[0] if examples else "", info="Press Enter or Search.")
            example = gr.Dropdown(examples, value=None, label="Example queries", scale=3, elem_id="rl-examples",
                                  info="Judged queries of this corpus: they also show nDCG@10.")
            search = gr.Button("Search", variant="primary", scale=1, elem_id="rl-search", min_width=110)
        describe(query, "The question to search the corpus for.")
        settings = _settings_panel(Settings())
        with gr.Tabs(selected="search") as tab_group:
            ctx = AppContext(state, corpus, query, settings, tab_group, judge_name=judge_name)
            for builder in tabs:
                builder(ctx)
        if ctx.search is None:
            raise RuntimeError("no tab set ctx.search: the page needs the Search tab (build_search_tab)")
        on_search = ctx.search
        search_event = dict(fn=on_search, inputs=ctx.inputs, outputs=ctx.search_outputs)

        def wire(trigger, api_name: str | None = None):
            naming = {"api_name": api_name} if api_name else {"api_visibility": PRIVATE}
            return ctx.chain_after_search(trigger(**search_event, **naming))

        for link in ctx.links:

            def opener(*args: Any, _fn: Callable[..., tuple[str, str]] = link.fn) -> dict[Component, Any]:
                return ctx.show_query(*_fn(*args))

            wire(link.trigger(opener, link.inputs, [tab_group, corpus, query], api_visibility=PRIVATE, queue=False).then)

        if ctx.doc_picker is not None:

            def pick_document(evt: gr.EventData):
                doc = getattr(evt, "_data", None) or {}
                return gr.update(value=doc["doc"]) if isinstance(doc, dict) and doc.get("doc") else gr.skip()

            for html in ctx.doc_lists:
                ctx.chain_after_search(
                    html.click(pick_document, None, ctx.doc_picker, api_visibility=PRIVATE, queue=False), always=True
                )

        def info(corpus_key: str) -> tuple[str, Any]:
            """The corpus line (with its uploaded run, if any) and the drop-the-run button's visibility."""
            loaded = state.run_for(corpus_key)
            run = f"before list: {loaded.label} ({len(loaded.run)} queries)" if loaded else None
            return corpus_info_html(state.dataset(corpus_key), run), gr.update(visible=loaded is not None)

        @user_errors
        def on_corpus(corpus_key):
            if not corpus_key:
                return gr.update(choices=[], value=None), "", gr.update(visible=False)
            dataset = state.dataset(corpus_key)
            return gr.update(choices=example_queries(dataset), value=None), *info(corpus_key)

        @user_errors
        def on_run_upload(file, corpus_key):
            """Check a TREC run against the corpus and make it the before list of the queries it ranks."""
            if file is None:
                return gr.update(), gr.update()
            if not corpus_key:
                raise ConfigError("Pick the corpus the run ranks first (or upload it as a BEIR zip), then its run.")
            path = getattr(file, "name", file)
            try:
                loaded = state.load_run(corpus_key, path, os.path.basename(str(path)))
            except RerankLensError as exc:
                kept = state.run_for(corpus_key)
                before = kept.label if kept else "BM25 + dense fusion"
                raise gr.Error(f"Run rejected; the before list stays {esc(before)}.<br>{page_message(exc)}",
                               title="Data problem", duration=30, print_exception=False) from None
            gr.Info(f"Loaded {loaded.label}: {len(loaded.run)} queries. Searching one of them reranks its list.")
            return info(corpus_key)

        @user_errors
        def on_drop_run(corpus_key):
            if corpus_key:
                state.drop_run(corpus_key)
            return info(corpus_key) if corpus_key else ("", gr.update(visible=False))

        @user_errors
        def on_upload(file, current_key):
            if file is None:
                return gr.update()
            path = getattr(file, "name", file)
            try:
                added = state.upload(path, os.path.basename(str(path)))
            except RerankLensError as exc:
                gr.Warning(f"Upload rejected; the previous corpus stays selected.<br>{page_message(exc)}", duration=30)
                return gr.update(value=current_key)
            if added.forgotten:
                gr.Warning(esc(added.message()), duration=30)
            else:
                gr.Info(esc(added.message()))
            return gr.update(choices=state.choices(), value=added.source.key)

        @user_errors
        def on_share(corpus_key, query_text, mode, request: gr.Request):
            made = state.share(corpus_key, query_text, mode)
            gr.Info("Share link made: whoever holds it opens this corpus, its run and the query. Revoke it below.")
            return {share_link: f"{_page_url(request)}?share={made.token}",
                    share_list: gr.update(choices=_share_choices(state), value=made.token)}

        @user_errors
        def on_revoke(token):
            if not token:
                raise ConfigError("Pick one of your share links to revoke.")
            if not state.revoke(token):
                raise ConfigError("That is not one of your share links (or it was revoked already).")
            gr.Info("Revoked: the link opens nothing any more.")
            return {share_link: "", share_list: gr.update(choices=_share_choices(state), value=None)}

        wire(search.click, "search")
        wire(query.submit)
        wire(settings[SETTING_FIELDS.index("latency_budget_ms")].change)
        wire(example.input(lambda q: q or gr.update(), example, query, api_visibility=PRIVATE, queue=False).then)
        corpus.change(on_corpus, corpus, [example, corpus_info, drop_run], api_visibility=PRIVATE)
        upload.upload(on_upload, [upload, corpus], corpus, api_name="upload")
        # A run changes the current answer's before list: answer the query in the box again once it is loaded
        # (or dropped); the opening handler asks for a query when the box is empty.
        for changed in (
            run_upload.upload(on_run_upload, [run_upload, corpus], [corpus_info, drop_run], api_name="upload_run"),
            drop_run.click(on_drop_run, corpus, [corpus_info, drop_run], api_name="drop_run"),
        ):
            ctx.chain_after_search(changed.success(ctx.opening or on_search, ctx.inputs, ctx.search_outputs,
                                                   api_visibility=PRIVATE))

        def on_load(stored_workspace, stored_judge, request: gr.Request):
            """Opens the visitor's workspace (the id its browser kept, or a new one; with a login, the user's).
            `/?corpus=<key>&q=<query>[&tab=chunks]` opens the app on that corpus and query (then runs it);
            `/?share=<token>` on a share link's corpus and query."""
            params = dict(request.query_params) if request else {}
            workspace, opened_share = app.begin_session(request, stored_workspace, params.get("share"))
            visitor = app.visitor_for(request)
            visitor.refresh()  # corpora written since the server started appear on reload
            choices = visitor.choices()
            known = {value for _, value in choices}
            linked_corpus = params.get("corpus") if params.get("corpus") in known else None
            linked_query = params.get("q")
            if opened_share is not None:
                linked_corpus, linked_query = opened_share.key, linked_query or opened_share.query
            elif params.get("share"):
                gr.Warning("This share link is unknown or was revoked: ask its owner for a new one.")
            # Without a deep link, leave query and tab alone: a user who clicked a tab or typed while the
            # page was loading must not be snapped back.
            corpus_update = gr.update(choices=choices, value=linked_corpus) if linked_corpus else gr.update(choices=choices)
            tab = params.get("tab") or ("search" if linked_query else None)
            login = getattr(request, "username", None)
            return {
                corpus: corpus_update,
                query: gr.update(value=linked_query) if linked_query else gr.skip(),
                tab_group: gr.update(selected=tab) if tab else gr.skip(),
                workspace_state: workspace,
                judge_name: gr.update(value=login, interactive=False) if login else gr.update(value=stored_judge or ""),
                share_list: gr.update(choices=_share_choices(visitor)),
            }

        load = demo.load(on_load, [workspace_state, judge_state],
                         [corpus, query, tab_group, workspace_state, judge_name, share_list],
                         api_visibility=PRIVATE, queue=False)
        load = load.then(on_corpus, corpus, [example, corpus_info, drop_run], api_visibility=PRIVATE)
        if ctx.opening is not None:  # the page opens on an answer: the seed query's, or the deep link's
            ctx.chain_after_search(load.then(ctx.opening, ctx.inputs, ctx.search_outputs, api_visibility=PRIVATE))
        judge_name.change(lambda name: " ".join((name or "").split()), judge_name, judge_state, api_visibility=PRIVATE,
                          queue=False)
        @user_errors
        def on_open_share(token, request: gr.Request):
            """For API clients: open a share link by its token, as `/?share=<token>` does for the page."""
            opened = app.open_share(request, (token or "").strip())
            if opened is None:
                raise ConfigError("This share link is unknown or was revoked: ask its owner for a new one.")
            return gr.update(choices=state.choices(), value=opened.key)

        share.click(on_share, [corpus, query, share_mode], [share_link, share_list], api_name="share")
        share_token = gr.Textbox(visible=False)
        describe(share_token, "The token of a share link (what follows share= in it).")
        share_token.submit(on_open_share, share_token, corpus, api_name="open_share")
        revoke.click(on_revoke, share_list, [share_link, share_list], api_name="revoke_share")
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def launch_options() -> dict[str, Any]:
    """Keyword arguments for `demo.launch`: theme, css, upload cap (Gradio 6 takes these at launch)."""
    return {
        # IBM Plex ships inside Gradio, so the page never waits on a font CDN when the machine is offline.
        "theme": gr.themes.Soft(primary_hue="indigo", neutral_hue="slate",
                                font=[gr.themes.GoogleFont("IBM Plex Sans"), "ui-sans-serif", "system-ui", "sans-serif"],
                                font_mono=[gr.themes.GoogleFont("IBM Plex Mono"), "ui-monospace", "monospace"]),
        "css_paths": [CSS_PATH],
        "max_file_size": MAX_UPLOAD,
        "show_error": False,
        "footer_links": ["api"],
        "js": FORCE_LIGHT_JS,
    }
