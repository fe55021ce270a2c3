"""The Search tab: the fused list and the reranked list side by side, the rank journey and per-stage latency.

`search_view` is plain (testable without Gradio's server); `search_handler` wraps it for the page:
package errors become `gr.Error` with their message (the fix included), and anything unexpected is
logged and shown as a short generic error, never a traceback. `run_search` and `pipeline_for` are the
one way every tab runs a query or builds a corpus's pipeline, with the page's progress bar. The page
opens on an answer: `opening_handler` runs the query in the box once the corpus and model are ready.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import plotly.graph_objects as go

from reranker.errors import ConfigError, RerankLensError
from reranker.evaluation.metrics import evaluate_per_query, stage_run
from reranker.pipeline import Pipeline, resolve_cross_encoder_spec
from reranker.types import PipelineResult, StageTiming
from reranker.ui import figures, render
from reranker.ui.context import AppContext, Handler, help_text, tab
from reranker.ui.settings import Settings, named_settings, settings_from, user_errors
from reranker.ui.state import AppState, judgments_for, progress_listener

LONGEST_DOCS = 5
LONG_DOC_CHARS = 2000  # roughly 400+ tokens: long enough to need several windows
ProgressFn = Callable[..., Any]


@dataclass(frozen=True)
class SearchView:
    summary: str
    notes: str
    lists: str
    journey: go.Figure
    latency: go.Figure
    doc_choices: list[tuple[str, str]]
    doc_value: str | None
    result: PipelineResult | None = field(default=None, compare=False)


def _progress_callback(progress: ProgressFn | None, label: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        progress((done, total), desc=f"{label}: {done:,} / {total:,} documents", unit="docs")

    return report


def pipeline_for(state: AppState, corpus_key: str, progress: ProgressFn | None) -> Pipeline:
    """The corpus's pipeline; a first use says on the progress bar what is being built. While the server's
    warm-up prepares this corpus, it says so and waits for it rather than building it a second time."""
    if not corpus_key:
        raise ConfigError("Pick a corpus first (or upload one).")
    if state.is_warming(corpus_key):
        if progress is not None:
            progress(0.0, desc=f"{PREPARING}: indexing {state.source(corpus_key).label} and loading the cross-encoder…")
        state.wait_warm(corpus_key)
    if progress is not None and not state.is_ready(corpus_key):
        size = len(state.dataset(corpus_key).corpus)
        progress(
            0.0,
            desc=f"First use of {state.source(corpus_key).label}: building BM25 and embedding {size:,} documents "
            "(embeddings are cached on disk for next time)…",
        )
    return state.pipeline(corpus_key, _progress_callback(progress, "Encoding the corpus"))


def run_search(
    state: AppState, corpus_key: str, query: str, settings: Settings, progress: ProgressFn | None, **changes: Any
) -> tuple[Pipeline, PipelineResult, list[StageTiming]]:
    """One query with the page's settings (and `changes`): the pipeline, its result and the index builds it paid for."""
    fresh = bool(corpus_key) and not state.is_ready(corpus_key)
    pipeline = pipeline_for(state, corpus_key, progress)
    already = 0 if fresh else len(pipeline.startup)  # a pipeline built by this request: show its index builds
    overrides = settings.overrides(**changes)
    if progress is not None:
        spec = resolve_cross_encoder_spec(overrides["cross_encoder"])
        progress(0.5, desc=f"Searching and reranking with {spec}…" if spec else "Searching…")
    with progress_listener(_progress_callback(progress, "Encoding the corpus")):
        result = pipeline.search(query, **overrides)
    return pipeline, result, list(pipeline.startup[already:])


def ndcg_before_after(result: PipelineResult, qid: str, grades: dict[str, int]) -> tuple[float, float] | None:
    """nDCG@10 of the fused list and of the final list for one judged query."""
    if not any(g > 0 for g in grades.values()):
        return None
    qrels = {qid: grades}
    results = {qid: result}
    before = evaluate_per_query(qrels, stage_run(results, "fused"), ("ndcg@10",))
    after = evaluate_per_query(qrels, stage_run(results, result.final_stage), ("ndcg@10",))
    return before[qid]["ndcg@10"], after[qid]["ndcg@10"]


def search_view(
    state: AppState, corpus_key: str, query: str, settings: Settings, progress: ProgressFn | None = None
) -> SearchView:
    """Everything the Search tab shows for one query."""
    pipeline, result, loads = run_search(state, corpus_key, query, settings, progress)
    dataset = state.dataset(corpus_key)
    judged = judgments_for(dataset, result.query)
    grades = judged[1] if judged else None
    ndcg = ndcg_before_after(result, judged[0], judged[1]) if judged else None
    label = state.source(corpus_key).label
    spec = resolve_cross_encoder_spec(settings.overrides()["cross_encoder"])
    models = f"{settings.bi_encoder} → {spec or 'no cross-encoder'}"
    summary = render.summary_html(
        result, corpus_label=label, ndcg=ndcg, judged=len(grades) if grades else None, models=models
    )
    lists = render.before_after_html(result, pipeline.corpus, normalized=settings.normalized, judgments=grades)
    notes = render.messages_html(result.messages)
    if not result.after.hits:
        notes += render.notice_html("No documents matched this query. Try other words or a larger retrieval depth.", "warn")
    choices, value = document_choices(result, pipeline)
    return SearchView(
        summary,
        notes,
        lists,
        figures.rank_journey(result, pipeline.corpus, top=min(result.top_n, 10)),
        figures.latency_figure(result.timings, loads),
        choices,
        value,
        result,
    )


def document_choices(result: PipelineResult, pipeline: Pipeline) -> tuple[list[tuple[str, str]], str | None]:
    """Final top-n documents (with their window counts), then the corpus's longest documents.

    The default is the best-ranked document that spans several windows, else the top document.
    """
    corpus = pipeline.corpus
    choices: list[tuple[str, str]] = []
    default = None
    for hit in result.after.hits[: result.top_n]:
        doc = corpus[hit.doc_id]
        windows = f" — {len(hit.chunks)} windows" if len(hit.chunks) > 1 else ""
        choices.append((f"#{hit.rank} {render.shorten(render.title_of(doc))}{windows}", hit.doc_id))
        if default is None and len(hit.chunks) > 1:
            default = hit.doc_id
    shown = {value for _, value in choices}
    longest = sorted(corpus.documents, key=lambda d: len(d.full_text), reverse=True)[:LONGEST_DOCS]
    longest = [doc for doc in longest if len(doc.full_text) >= LONG_DOC_CHARS]
    for doc in longest:
        if doc.id not in shown:
            choices.append((f"long: {render.shorten(render.title_of(doc))} ({len(doc.full_text):,} chars)", doc.id))
    if default is None and choices:
        default = choices[0][1]
    return choices, default


def search_handler(state: AppState) -> Handler:
    """The page's search event: (corpus, query, *settings) -> summary, notes, lists, journey, latency, document picker."""

    @named_settings()
    @user_errors
    def on_search(corpus_key, query, *rest, progress=gr.Progress()):  # noqa: B008 - Gradio's progress injection
        """One query: the fused list before reranking and the cross-encoder's list after it, side by side (HTML),
        with a summary, notes, the rank journey and per-stage latency (plotly) and the Chunks tab's document picker."""
        view = search_view(state, corpus_key, query, settings_from(rest), progress)
        return (
            view.summary,
            view.notes,
            view.lists,
            view.journey,
            view.latency,
            gr.update(choices=view.doc_choices, value=view.doc_value),
        )

    return on_search


PREPARING = "Preparing the corpus and the model (once after the server starts)"
TYPE_A_QUERY = "Type a query (or pick an example) and press Search."


def placeholder_html(text: str) -> str:
    return f'<div class="rl-placeholder">{render.esc(text)}</div>'


def opening_notice(state: AppState, corpus_key: str) -> str:
    """What the results area says while the page's opening query runs: preparing, or searching."""
    try:
        cold = state.is_warming(corpus_key) or not state.is_ready(corpus_key)
        label = state.source(corpus_key).label
    except RerankLensError:  # the search itself reports an unknown corpus
        cold, label = False, corpus_key
    if cold:
        return placeholder_html(f"{PREPARING}: indexing {label} and loading the cross-encoder. "
                                "The answer to the query above appears here as soon as they are ready.")
    return placeholder_html("Searching for the query above…")


def opening_handler(state: AppState, search: Handler, outputs: list[Any], lists: Any) -> Handler:
    """What the page runs when it opens (same inputs and outputs as `search`): the query in the box, the seed
    query or a deep link's, so the page opens on an answer. The results area first says what is being
    prepared; without a corpus or a query it asks for one."""

    @named_settings()
    def on_open(corpus_key, query, *rest, progress=gr.Progress()):  # noqa: B008 - Gradio's progress injection
        updates = [gr.skip() for _ in outputs]
        at = outputs.index(lists)
        if not corpus_key or not (query or "").strip():
            updates[at] = placeholder_html(TYPE_A_QUERY)
            yield tuple(updates)
            return
        updates[at] = opening_notice(state, corpus_key)
        yield tuple(updates)
        yield search(corpus_key, query, *rest, progress=progress)

    return on_open


HELP = (
    "Hover a document to find it in both lists; click to pin it and open it in Chunks. "
    "Badges: ▲/▼ moved up/down within the top-n, ★ new in the top-n after reranking, ✖ dropped out of it, "
    "→ #k its rank after reranking, · not reranked: past the rerank depth (or the latency budget's cut). "
    "✓ marks documents judged relevant for the query."
)


def build_search_tab(ctx: AppContext) -> None:
    # The labels name the outputs for API clients; the page does not show them.
    with tab("Search", ctx.search_tab_id):
        summary = gr.HTML(label="Summary", elem_id="rl-summary")
        notes = gr.HTML(label="Notes", elem_id="rl-notes")
        lists = gr.HTML(
            # The page runs the query in the box as soon as it opens (opening_handler).
            placeholder_html("Loading the answer to the query above…" if ctx.query.value else TYPE_A_QUERY),
            label="Lists",
            elem_id="rl-lists",
            js_on_load=render.DOC_LIST_JS,
        )
        ctx.doc_lists.append(lists)
        help_text(HELP)
        with gr.Row(equal_height=False):
            journey = gr.Plot(figures.empty_figure("The rank journey appears after a search."), show_label=False,
                              label="Rank journey", elem_id="rl-journey", scale=3)
            latency = gr.Plot(figures.empty_figure("Per-stage latency appears after a search."), show_label=False,
                              label="Latency", elem_id="rl-latency", scale=2)
    # The page wires its search triggers (button, Enter, examples, links) to this handler once every tab is built.
    ctx.search = search_handler(ctx.state)
    ctx.search_outputs = [summary, notes, lists, journey, latency]
    ctx.opening = opening_handler(ctx.state, ctx.search, ctx.search_outputs, lists)
