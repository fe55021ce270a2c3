"""The Chunks tab: a long document's cross-encoder score per token window, the deciding window and the cut,
and why that window scored as it did (each sentence's logit change, as heat over the text).

`chunk_view` is plain (tested directly); `build_chunks_tab` wires it. The tab re-scores its document
after every search, and a click on a row of any document list opens that document here. While the tab is
hidden, the explanation (about a second of CPU) waits until the tab is opened. The explanation
is `reranker.explain.explain`'s result; this module only renders it.
"""

from __future__ import annotations

import dataclasses

import gradio as gr
import plotly.graph_objects as go
from gradio.components import Component

from reranker.errors import ConfigError
from reranker.explain import explain
from reranker.pipeline import check_query, resolve_cross_encoder_spec
from reranker.ui import figures, render
from reranker.ui.context import PRIVATE, AppContext, FollowUp, describe, tab
from reranker.ui.search_tab import ProgressFn, pipeline_for
from reranker.ui.settings import Settings, named_settings, settings_from, user_errors
from reranker.ui.state import AppState

EMPTY = "Run a search, then pick a document."
OFF = "off"
# (label, value): the value is a granularity, or "integrated-gradients" (sentences, that method), or off.
EXPLAIN_CHOICES = [
    ("sentences", "sentence"),
    ("token spans", "tokens"),
    ("sentences, integrated gradients (slower)", "integrated-gradients"),
    ("off", OFF),
]

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



def defer_while_hidden_js(inputs: list[Component], mode: Component) -> str:
    """Browser code run before the after-search scoring: the explain `mode` (one of `inputs`, found by identity,
    not by a fixed place) is off unless the tab is on screen; opening the tab explains. Gradio passes inputs
    then outputs; only inputs go on."""
    at = next(i for i, c in enumerate(inputs) if c is mode)
    return f"""
(...args) => {{
  const values = args.slice(0, {len(inputs)});
  const plot = document.querySelector('#rl-chunk-plot');
  if (!plot || plot.offsetParent === null) values[{at}] = '{OFF}';
  return values;
}}
"""


@dataclasses.dataclass(frozen=True)
class ChunkView:
    figure: go.Figure
    text: str
    info: str


def chunk_view(
    state: AppState,
    corpus_key: str,
    query: str,
    doc_id: str | None,
    settings: Settings,
    progress: ProgressFn | None = None,
    explain_mode: str = "sentence",
) -> ChunkView:
    """Per-window cross-encoder scores for one document, its text with the deciding window and the cut, and
    (unless `explain_mode` is "off") the heat of each sentence's or token span's contribution to that window."""
    if not doc_id:
        return ChunkView(figures.empty_figure(EMPTY), "", "")
    pipeline = pipeline_for(state, corpus_key, progress)
    doc = pipeline.corpus.get(doc_id.strip())
    if doc is None:
        raise ConfigError(f"No document with id {doc_id!r} in this corpus; pick one from the list.")
    overrides = settings.overrides()
    spec = resolve_cross_encoder_spec(overrides["cross_encoder"])
    if spec is None:
        message = (
            "No cross-encoder is selected or available offline, so there are no chunk scores. "
            "Pick or type a cross-encoder in Models & settings (a model id or a local directory)."
        )
        return ChunkView(figures.empty_figure("No cross-encoder: no chunk scores."), "", render.notice_html(message, "warn"))
    query = check_query(query)
    config = dataclasses.replace(pipeline.config, **overrides)
    config.validate()
    if progress is not None:
        progress(0.3, desc=f"Scoring the document's windows with {spec}…")
    reranker = pipeline.reranker(spec, config)
    scores, messages, _, _ = reranker.score_documents(query, [doc])
    score = scores[0]
    title = render.title_of(doc)
    fig = figures.chunk_scores_figure(
        score.chunks,
        score.deciding_chunk,
        score.truncated_at,
        title=f"Score per window — {render.shorten(title, 70)}",
        normalized=settings.normalized,
    )
    tokens = score.chunks[-1].token_end if score.chunks else 0
    cut = (
        f"A model that truncates at {reranker.max_length} tokens would stop at character {score.truncated_at:,} "
        f"of {len(doc.full_text):,} (the ✂ mark)."
        if score.truncated_at is not None
        else f"The whole document fits in one {reranker.max_length}-token input: nothing is cut off."
    )
    value = score.normalized if settings.normalized else score.raw
    info = (
        f'<div class="rl-chunk-info"><b>{render.esc(title)}</b> <code>{render.esc(doc.id)}</code><br>'
        f"{tokens:,} tokens in {len(score.chunks)} windows of up to {config.chunk_tokens} tokens "
        f"({config.chunk_overlap} overlap). Document score = <b>{config.aggregation}</b> of the window scores = "
        f"<b>{value:.3f}</b> ({render.esc('sigmoid, 0–1' if settings.normalized else 'logit')}), decided by window "
        f"{score.deciding_chunk + 1}. {render.esc(cut)}</div>"
    ) + render.messages_html(messages)
    explanation, legend = None, ""
    if explain_mode and explain_mode != OFF and score.chunks:
        if progress is not None:
            progress(0.7, desc="Explaining the deciding window…")
        method = "integrated-gradients" if explain_mode == "integrated-gradients" else "occlusion"
        granularity = "tokens" if explain_mode == "tokens" else "sentence"
        try:
            explanation = explain(reranker, query, doc.full_text, method=method, granularity=granularity)
            legend = render.explanation_legend_html(explanation)
        except ConfigError as exc:  # e.g. integrated gradients on a model that cannot take embeddings
            legend = render.notice_html(f"No explanation: {exc}", "warn")
    text = legend + render.chunk_text_html(doc, score.chunks, score.deciding_chunk, score.truncated_at, explanation)
    return ChunkView(fig, text, info)


HELP = (
    "A long document is scored as overlapping token windows; its score is the max (or mean, or first) of "
    "the window scores. The bars show every window's score, the highlighted text is the window that decided, "
    "and ✂ marks where a model that simply truncates its input would stop reading. The heat over the deciding "
    "window shows each sentence's logit change: the window's score minus its score with that sentence removed "
    "(green raised the score, red lowered it; hover a sentence for its number)."
)


def build_chunks_tab(ctx: AppContext) -> None:
    with tab("Chunks", "chunks", HELP) as chunks_tab:
        with gr.Row():
            doc = gr.Dropdown(label="Document", choices=[], allow_custom_value=True, scale=4, elem_id="rl-chunk-doc",
                              info="The current results, then the corpus's longest documents; or type a document id.")
            show = gr.Button("Score windows", variant="secondary", scale=1)
        describe(doc, "The id of the document whose token windows are scored.")
        mode = gr.Radio(EXPLAIN_CHOICES, value="sentence", label="Explain the deciding window", elem_id="rl-explain-mode")
        describe(mode, "How the deciding window is explained: by sentence, by token span, by integrated gradients, or off.")
        info = gr.HTML(elem_id="rl-chunk-info")
        fig = gr.Plot(figures.empty_figure(EMPTY), show_label=False, elem_id="rl-chunk-plot")
        text = gr.HTML(elem_id="rl-chunk-text", js_on_load=SCROLL_TO_DECIDING_JS)
    state = ctx.state

    @named_settings()
    @user_errors
    def on_chunks(corpus_key, query, doc_id, explain_mode, *rest, progress=gr.Progress()):  # noqa: B008 - Gradio's progress injection
        # rest: the settings in SETTING_FIELDS order
        view = chunk_view(state, corpus_key, query, doc_id, settings_from(tuple(rest)), progress, explain_mode=explain_mode)
        return {fig: view.figure, text: view.text, info: view.info}

    inputs = [ctx.corpus, ctx.query, doc, mode, *ctx.settings]
    outputs = [fig, text, info]
    show.click(on_chunks, inputs, outputs, api_name="chunks")
    doc.input(on_chunks, inputs, outputs, api_visibility=PRIVATE, show_progress="minimal")
    mode.input(on_chunks, inputs, outputs, api_visibility=PRIVATE, show_progress="minimal")
    # The search fills the picker with its results.
    ctx.fill_from_search(doc, lambda view: gr.update(choices=view.doc_choices, value=view.doc_value))
    chunks_tab.select(on_chunks, inputs, outputs, api_visibility=PRIVATE, show_progress="minimal")
    ctx.after_search.append(FollowUp(on_chunks, inputs, outputs, js=defer_while_hidden_js(inputs, mode)))
    ctx.doc_picker = doc
