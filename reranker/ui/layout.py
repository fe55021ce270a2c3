"""The page: corpus, query and settings on top; tabs Search, Chunks and Compare below.

`build_demo()` has no side effects beyond scanning the corpus folders; nothing loads until the
first query. Tabs are built by a list of builder functions, so another view (e.g. Evaluate) is
one more function: `build_demo(tabs=[*DEFAULT_TABS, build_evaluate_tab])`. A page opened as
`/?corpus=<key>&q=<query>` (or a builder calling `ctx.show_query`) opens Search with that query.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from reranker.models import KNOWN_BI_ENCODERS, KNOWN_CROSS_ENCODERS, PROJECT_MODEL_INFO, PROJECT_MODELS, is_available_offline
from reranker.pipeline import default_cross_encoder
from reranker.ui import figures
from reranker.ui.search_tab import BLEND_CHOICES, RAW_MODE, SCORE_MODES, Settings, make_callbacks
from reranker.ui.state import UPLOAD_SUFFIXES, AppState, example_queries

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CSS_PATH = ASSETS / "app.css"
CONCURRENCY = int(os.environ.get("RERANK_LENS_CONCURRENCY", "4"))
MAX_UPLOAD = "50mb"
PRIVATE = "private"  # page-only events: not in the API docs, not callable by API clients

# Hover a row to highlight the document in every list of the component; click to pin it.
HIGHLIGHT_JS = """
const rows = () => element.querySelectorAll('tr[data-doc]');
const mark = (doc, cls) => rows().forEach(r => r.classList.toggle(cls, doc !== null && r.dataset.doc === doc));
element.addEventListener('mouseover', e => {
  const r = e.target.closest('tr[data-doc]');
  mark(r ? r.dataset.doc : null, 'rl-hover');
});
element.addEventListener('mouseleave', () => mark(null, 'rl-hover'));
element.addEventListener('click', e => {
  const r = e.target.closest('tr[data-doc]');
  if (!r) return;
  const pin = !r.classList.contains('rl-selected');
  mark(pin ? r.dataset.doc : null, 'rl-selected');
  if (pin) trigger('click', {doc: r.dataset.doc});  // the server opens this document in the Chunks tab
});
"""

# Scroll the document text so the deciding window is in view, once per new document; the tab may be
# hidden when the text arrives (nothing is laid out then), so retry whenever the component gets a size.
SCROLL_TO_DECIDING_JS = """
const reveal = () => {
  const box = element.querySelector('.rl-doctext');
  const tag = element.querySelector('.rl-deciding-tag');
  if (!box || !tag || box.clientHeight === 0 || element.dataset.revealed === '1') return;
  box.scrollTop = Math.max(0, tag.offsetTop - 48);
  element.dataset.revealed = '1';
};
watch('value', () => { element.dataset.revealed = ''; reveal(); });
new ResizeObserver(reveal).observe(element);
reveal();
"""

# The lists, plots and badges are designed on white; keep the page light when the OS prefers dark.
FORCE_LIGHT_JS = "() => { document.body.classList.remove('dark'); }"

INTRO = (
    '<div class="rl-header"><div><h1>Rerank Lens</h1>'
    "<p>What BM25, dense retrieval, reciprocal rank fusion and a cross-encoder do to one query: "
    "the fused list before reranking next to the list after it, how each document moved, what every stage cost, "
    "and which part of a long document decided its score.</p></div></div>"
)


def model_choices(cross: bool) -> list[tuple[str, str]]:
    """(label, value) pairs for a model picker, saying which models work offline here."""
    choices: list[tuple[str, str]] = []
    if cross:
        best = default_cross_encoder()
        choices.append((f"auto — best available ({best or 'none offline: stops after fusion'})", "auto"))
        for name in PROJECT_MODELS:
            info = PROJECT_MODEL_INFO.get(name, "fine-tuned in this project")
            choices.append((f"{name} — {info}", name))
        known = KNOWN_CROSS_ENCODERS
    else:
        known = KNOWN_BI_ENCODERS
    for model_id, description in known:
        where = "offline ✓" if is_available_offline(model_id) else "needs the hub"
        choices.append((f"{model_id} — {description} ({where})", model_id))
    if cross:
        choices.append(("none — stop after fusion", "none"))
    return choices


@dataclass
class AppContext:
    """What tab builders get: the shared state, the shared inputs and helpers to wire events."""

    state: AppState
    callbacks: dict[str, Callable[..., Any]]
    corpus: gr.Dropdown
    query: gr.Textbox
    settings: list[gr.components.Component]
    tabs: gr.Tabs
    search_outputs: list[gr.components.Component] = field(default_factory=list)
    after_search: list[tuple[Callable[..., Any], list[Any], list[Any]]] = field(default_factory=list)
    search_tab_id: str = "search"
    doc_lists: list[gr.HTML] = field(default_factory=list)  # lists whose row clicks pick a document
    doc_picker: gr.Dropdown | None = None  # where a picked document goes (the Chunks tab)

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [self.corpus, self.query, *self.settings]

    links: list[tuple[Callable[..., Any], Callable[..., tuple[str, str]], list[Any]]] = field(default_factory=list)

    def show_query(self, corpus_key: str, query: str) -> tuple[Any, Any, Any]:
        """Updates for (tabs, corpus, query) that select the Search tab with a corpus and a query."""
        return gr.update(selected=self.search_tab_id), gr.update(value=corpus_key), gr.update(value=query)

    def link_to_search(self, trigger: Callable[..., Any], fn: Callable[..., tuple[str, str]], inputs: list[Any]) -> None:
        """Make an event open Search and run it: `trigger` is e.g. `table.select`, `fn(*inputs)` returns
        (corpus key, query). Wired once every tab is built, since the search outputs span tabs."""
        self.links.append((trigger, fn, inputs))


TabBuilder = Callable[[AppContext], None]


def build_search_tab(ctx: AppContext) -> None:
    with gr.Tab("Search", id="search"):
        summary = gr.HTML(elem_id="rl-summary")
        notes = gr.HTML(elem_id="rl-notes")
        lists = gr.HTML(
            '<div class="rl-placeholder">Type a query (or pick an example) and press Search.</div>',
            elem_id="rl-lists",
            js_on_load=HIGHLIGHT_JS,
        )
        ctx.doc_lists.append(lists)
        gr.Markdown(
            "Hover a document to find it in both lists; click to pin it and open it in Chunks. "
            "Badges: ▲/▼ moved up/down within the top-n, ★ new in the top-n after reranking, ✖ dropped out of it, "
            "→ #k its rank after reranking, · not reranked: past the rerank depth (or the latency budget's cut). "
            "✓ marks documents judged relevant for the query.",
            elem_classes=["rl-help"],
        )
        with gr.Row(equal_height=False):
            journey = gr.Plot(figures.empty_figure("The rank journey appears after a search."), show_label=False,
                              elem_id="rl-journey", scale=3)
            latency = gr.Plot(figures.empty_figure("Per-stage latency appears after a search."), show_label=False,
                              elem_id="rl-latency", scale=2)
        ctx.search_outputs = [summary, notes, lists, journey, latency]


def build_chunks_tab(ctx: AppContext) -> None:
    with gr.Tab("Chunks", id="chunks"):
        gr.Markdown(
            "A long document is scored as overlapping token windows; its score is the max (or mean, or first) of "
            "the window scores. The bars show every window's score, the highlighted text is the window that decided, "
            "and ✂ marks where a model that simply truncates its input would stop reading.",
            elem_classes=["rl-help"],
        )
        with gr.Row():
            doc = gr.Dropdown(label="Document", choices=[], allow_custom_value=True, scale=4, elem_id="rl-chunk-doc",
                              info="The current results, then the corpus's longest documents; or type a document id.")
            show = gr.Button("Score windows", variant="secondary", scale=1)
        info = gr.HTML(elem_id="rl-chunk-info")
        fig = gr.Plot(figures.empty_figure("Run a search, then pick a document."), show_label=False, elem_id="rl-chunk-plot")
        text = gr.HTML(elem_id="rl-chunk-text", js_on_load=SCROLL_TO_DECIDING_JS)
        inputs = [ctx.corpus, ctx.query, doc, *ctx.settings]
        outputs = [fig, text, info]
        show.click(ctx.callbacks["chunks"], inputs, outputs, api_name="chunks")
        doc.input(ctx.callbacks["chunks"], inputs, outputs, api_visibility=PRIVATE, show_progress="minimal")
        ctx.search_outputs.append(doc)
        ctx.after_search.append((ctx.callbacks["chunks"], inputs, outputs))
        ctx.doc_picker = doc


def build_compare_tab(ctx: AppContext) -> None:
    with gr.Tab("Compare", id="compare"):
        gr.Markdown(
            "Two models on the same query and the same candidates. Rank agreement says how differently they order "
            "the documents; the latency chart shows what each costs per query and to load.",
            elem_classes=["rl-help"],
        )
        cross_choices = model_choices(True)
        cross_values = [v for _, v in cross_choices if v not in ("auto", "none")]
        with gr.Row():
            kind = gr.Radio(["Cross-encoders", "Bi-encoders"], value="Cross-encoders", label="Compare", scale=1)
            model_a = gr.Dropdown(cross_choices, value=cross_values[0], label="Model A", allow_custom_value=True, scale=3,
                                  elem_id="rl-model-a")
            model_b = gr.Dropdown(cross_choices, value=cross_values[1], label="Model B", allow_custom_value=True, scale=3,
                                  elem_id="rl-model-b")
        run = gr.Button("Compare", variant="primary", elem_id="rl-compare-btn")
        agreement = gr.HTML(elem_id="rl-agreement")
        with gr.Row(equal_height=False):
            lists = gr.HTML(elem_id="rl-compare-lists", js_on_load=HIGHLIGHT_JS)
        ctx.doc_lists.append(lists)
        latency = gr.Plot(figures.empty_figure("Run a comparison to see each model's latency."), show_label=False,
                          elem_id="rl-compare-latency")
        kind.change(ctx.callbacks["compare_kind"], kind, [model_a, model_b], api_visibility=PRIVATE)
        run.click(ctx.callbacks["compare"], [ctx.corpus, ctx.query, kind, model_a, model_b, *ctx.settings],
                  [agreement, lists, latency], api_name="compare")


def build_evaluate_tab(ctx: AppContext) -> None:
    """The Evaluate tab lives in its own module (query-set error analysis)."""
    from reranker.ui.evaluate_tab import build_evaluate_tab as build

    build(ctx)


DEFAULT_TABS: tuple[TabBuilder, ...] = (build_search_tab, build_chunks_tab, build_compare_tab, build_evaluate_tab)


def _settings_panel(defaults: Settings) -> list[gr.components.Component]:
    """The settings widgets, in `Settings` field order."""
    with gr.Accordion("Models & settings", open=False, elem_id="rl-settings"):
        with gr.Row():
            bi = gr.Dropdown(model_choices(False), value=defaults.bi_encoder, label="Bi-encoder (dense retrieval)",
                             allow_custom_value=True, info="A hub id or a local directory.", elem_id="rl-bi")
            cross = gr.Dropdown(model_choices(True), value=defaults.cross_encoder, label="Cross-encoder (reranker)",
                                allow_custom_value=True, info="A hub id, a local directory, auto or none.", elem_id="rl-cross")
        with gr.Row():
            depth = gr.Slider(10, 1000, value=defaults.retrieval_depth, step=10, label="Retrieval depth",
                              info="Documents BM25 and dense each return.")
            rrf_k = gr.Slider(0, 200, value=defaults.rrf_k, step=1, label="RRF k",
                              info="Fusion score = Σ 1/(k + rank); larger k flattens rank differences.")
            rerank_depth = gr.Slider(5, 200, value=defaults.rerank_depth, step=5, label="Rerank depth",
                                     info="Fused documents the cross-encoder scores.", elem_id="rl-rerank-depth")
            top_n = gr.Slider(3, 50, value=defaults.top_n, step=1, label="Top-n shown")
        with gr.Row():
            chunk = gr.Slider(32, 512, value=defaults.chunk_tokens, step=16, label="Chunk size (tokens)",
                              info="Capped by what the model reads with the query.")
            overlap = gr.Slider(0, 256, value=defaults.chunk_overlap, step=8, label="Chunk overlap (tokens)")
            aggregation = gr.Radio(["max", "mean", "first"], value=defaults.aggregation, label="Chunk aggregation",
                                   info="max = best window (MaxP); first = what truncation does.")
            score_mode = gr.Radio(list(SCORE_MODES), value=defaults.score_mode, label="Cross-encoder scores",
                                  info="raw logit, or sigmoid(logit) between 0 and 1.")
        with gr.Row():
            interpolation = gr.Dropdown(list(BLEND_CHOICES), value=defaults.interpolation, label="Blend with fused score",
                                        allow_custom_value=True, elem_id="rl-interpolation",
                                        info="Score = (1−w)·z(cross-encoder) + w·z(fused), z-scored per query; 0 = "
                                             "cross-encoder only. A fine-tuned model's card recommends a w.")
            budget = gr.Number(value=defaults.budget_ms, minimum=0, precision=0, label="Latency budget (ms, 0 = none)",
                               info="Rerank depth shrinks so the whole query fits; the notes say what was cut.",
                               elem_id="rl-budget")
    return [bi, cross, depth, rrf_k, rerank_depth, top_n, chunk, overlap, aggregation, score_mode, interpolation, budget]


def build_demo(state: AppState | None = None, tabs: Sequence[TabBuilder] = DEFAULT_TABS) -> gr.Blocks:
    """The whole app as a gr.Blocks with its queue configured; launch with `launch_options()`."""
    state = state or AppState()
    callbacks = make_callbacks(state)
    defaults = Settings(score_mode=RAW_MODE)
    default_key = state.default_key
    examples = example_queries(state.dataset(default_key)) if default_key else []
    with gr.Blocks(title="Rerank Lens", fill_width=False) as demo:
        gr.HTML(INTRO)
        with gr.Row(equal_height=False, elem_id="rl-corpus-row"):
            corpus = gr.Dropdown(state.choices(), value=default_key, label="Corpus", scale=4, elem_id="rl-corpus",
                                 info="Bundled corpora, BEIR folders found in the data directory, and your uploads.")
            upload = gr.UploadButton("Upload documents…", file_types=list(UPLOAD_SUFFIXES), file_count="single",
                                     type="filepath", scale=1, min_width=180, elem_id="rl-upload", variant="secondary")
        corpus_info = gr.HTML(elem_id="rl-corpus-info")
        with gr.Row(equal_height=False, elem_id="rl-query-row"):
            query = gr.Textbox(label="Query", placeholder="Ask something about the corpus…", scale=5, elem_id="rl-query",
                               max_lines=3, value=examples[0] if examples else "", info="Press Enter or Search.")
            example = gr.Dropdown(examples, value=None, label="Example queries", scale=3, elem_id="rl-examples",
                                  info="Judged queries of this corpus: they also show nDCG@10.")
            search = gr.Button("Search", variant="primary", scale=1, elem_id="rl-search", min_width=110)
        settings = _settings_panel(defaults)
        with gr.Tabs(selected="search") as tab_group:
            ctx = AppContext(state, callbacks, corpus, query, settings, tab_group)
            for builder in tabs:
                builder(ctx)

        inputs = ctx.inputs
        search_event = dict(fn=callbacks["search"], inputs=inputs, outputs=ctx.search_outputs)

        def wire(trigger, api_name: str | None = None):
            naming = {"api_name": api_name} if api_name else {"api_visibility": PRIVATE}
            event = trigger(**search_event, **naming)
            for fn, fn_inputs, fn_outputs in ctx.after_search:
                event = event.success(fn, fn_inputs, fn_outputs, api_visibility=PRIVATE, show_progress="hidden")
            return event

        for trigger, fn, fn_inputs in ctx.links:

            def opener(*args: Any, _fn: Callable[..., tuple[str, str]] = fn) -> tuple[Any, Any, Any]:
                return ctx.show_query(*_fn(*args))

            wire(trigger(opener, fn_inputs, [tab_group, corpus, query], api_visibility=PRIVATE, queue=False).then)

        if ctx.doc_picker is not None:

            def pick_document(evt: gr.EventData):
                doc = getattr(evt, "_data", None) or {}
                return gr.update(value=doc["doc"]) if isinstance(doc, dict) and doc.get("doc") else gr.skip()

            for html in ctx.doc_lists:
                event = html.click(pick_document, None, ctx.doc_picker, api_visibility=PRIVATE, queue=False)
                for fn, fn_inputs, fn_outputs in ctx.after_search:
                    event = event.then(fn, fn_inputs, fn_outputs, api_visibility=PRIVATE, show_progress="hidden")

        wire(search.click, "search")
        wire(query.submit)
        wire(ctx.settings[-1].change)
        wire(example.input(lambda q: q or gr.update(), example, query, api_visibility=PRIVATE, queue=False).then)
        corpus.change(callbacks["corpus"], corpus, [example, corpus_info], api_visibility=PRIVATE)
        upload.upload(callbacks["upload"], [upload, corpus], corpus, api_name="upload")

        autorun = gr.State(False)

        def on_load(request: gr.Request):
            """`/?corpus=<key>&q=<query>[&tab=chunks]` opens the app on that corpus and runs the query."""
            params = dict(request.query_params) if request else {}
            state.refresh()  # corpora written since the server started appear on reload
            choices = state.choices()
            known = {value for _, value in choices}
            # Without a deep link, leave query and tab alone: a user who clicked a tab or typed while the
            # page was loading must not be snapped back.
            linked_corpus = params.get("corpus") if params.get("corpus") in known else None
            corpus_update = gr.update(choices=choices, value=linked_corpus) if linked_corpus else gr.update(choices=choices)
            query_update = gr.update(value=params["q"]) if params.get("q") else gr.skip()
            tab = params.get("tab") or ("search" if params.get("q") else None)
            tab_update = gr.update(selected=tab) if tab else gr.skip()
            return corpus_update, query_update, tab_update, bool(params.get("q"))

        def run_if_linked(run: bool, *args: Any, progress=gr.Progress()):  # noqa: B008 - Gradio's progress injection
            if not run:
                return tuple(gr.skip() for _ in ctx.search_outputs)
            return callbacks["search"](*args, progress=progress)

        load = demo.load(on_load, None, [corpus, query, tab_group, autorun], api_visibility=PRIVATE, queue=False)
        load = load.then(callbacks["corpus"], corpus, [example, corpus_info], api_visibility=PRIVATE)
        load = load.then(run_if_linked, [autorun, *inputs], ctx.search_outputs, api_visibility=PRIVATE)
        for fn, fn_inputs, fn_outputs in ctx.after_search:
            load = load.success(fn, fn_inputs, fn_outputs, api_visibility=PRIVATE, show_progress="hidden")
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
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
