"""The Search tab: the fused list and the reranked list side by side, the rank journey and per-stage latency,
and judging: a grade 0–3 for any listed document, saved in the corpus's overlay (`reranker.judgments`), and
removing a grade made here.
When a TREC run is uploaded for the corpus and the query is one of the corpus queries it ranks, the run's
list is the "before" list instead of fusion (the cross-encoder reranks it), and the page says so.

`search_view`, `grade_view` and `remove_grade_view` are plain (testable without Gradio's server); the handlers
wrap them for the page: package errors become `gr.Error` with their message (the fix included), and anything unexpected is
logged and shown as a short generic error, never a traceback. `run_search` and `pipeline_for` are the
one way every tab runs a query or builds a corpus's pipeline, with the page's progress bar. The page
opens on an answer: `opening_handler` runs the query in the box once the corpus and model are ready.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import plotly.graph_objects as go

from reranker.cache import atomic_write_text
from reranker.errors import ConfigError, RerankLensError
from reranker.evaluation.metrics import evaluate_per_query, stage_run
from reranker.judgments import (
    GRADES,
    grades_of,
    overlay_name,
    overlay_texts,
    query_judgments,
    shown_documents,
    unjudged,
)
from reranker.pipeline import Pipeline, resolve_cross_encoder_spec
from reranker.types import PipelineResult, StageTiming
from reranker.ui import figures, render
from reranker.ui.context import PRIVATE, AppContext, FollowUp, Handler, help_text, tab
from reranker.ui.judging import judge_name, merge_grade_files
from reranker.ui.settings import Settings, named_settings, settings_from, user_errors
from reranker.ui.state import AppState, BeforeList, progress_listener

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
    view: str = ""  # the token a grade of these lists names (see `grade_view`)


@dataclass(frozen=True)
class Shown:
    """A result on someone's page, kept so that a grade redraws it without searching again."""

    corpus_key: str
    result: PipelineResult
    normalized: bool
    models: str
    before_heading: str | None = None  # when the before list is not fusion's (an uploaded run's)


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
    state: AppState,
    corpus_key: str,
    query: str,
    settings: Settings,
    progress: ProgressFn | None,
    *,
    use_run: bool = True,
    **changes: Any,
) -> tuple[Pipeline, PipelineResult, list[StageTiming], BeforeList]:
    """One query with the page's settings (and `changes`): the pipeline, its result, the index builds it paid for
    and what its before list is. With `use_run` and a run uploaded for the corpus that ranks this query, the
    run's list is reranked instead of the fused one (the result's `before` is then stage "run")."""
    fresh = bool(corpus_key) and not state.is_ready(corpus_key)
    pipeline = pipeline_for(state, corpus_key, progress)
    already = 0 if fresh else len(pipeline.startup)  # a pipeline built by this request: show its index builds
    overrides = settings.overrides(**changes)
    before = state.before_list(corpus_key, query) if use_run else BeforeList()
    if progress is not None:
        spec = resolve_cross_encoder_spec(overrides["cross_encoder"])
        progress(0.5, desc=f"Searching and reranking with {spec}…" if spec else "Searching…")
    with progress_listener(_progress_callback(progress, "Encoding the corpus")):
        if before.run is not None:
            result = pipeline.rerank(query, before.run.ranked_list(before.qid), **overrides)
        else:
            result = pipeline.search(query, **overrides)
    return pipeline, result, list(pipeline.startup[already:]), before


def ndcg_before_after(result: PipelineResult, qid: str, grades: dict[str, int]) -> tuple[float, float] | None:
    """nDCG@10 of the list before reranking (fused, or an uploaded run's) and of the final list for one judged query."""
    if not any(g > 0 for g in grades.values()):
        return None
    qrels = {qid: grades}
    results = {qid: result}
    before = evaluate_per_query(qrels, stage_run(results, result.before.stage), ("ndcg@10",))
    after = evaluate_per_query(qrels, stage_run(results, result.final_stage), ("ndcg@10",))
    return before[qid]["ndcg@10"], after[qid]["ndcg@10"]


def search_view(
    state: AppState, corpus_key: str, query: str, settings: Settings, progress: ProgressFn | None = None
) -> SearchView:
    """Everything the Search tab shows for one query."""
    pipeline, result, loads, before = run_search(state, corpus_key, query, settings, progress)
    spec = resolve_cross_encoder_spec(settings.overrides()["cross_encoder"])
    models = f"{settings.bi_encoder} → {spec or 'no cross-encoder'}"
    shown = Shown(corpus_key, result, settings.normalized, models, before.heading)
    view = state.shown.add(shown)
    summary, lists = judged_panels(state, shown, view)
    notes = render.messages_html(result.messages)
    if before.note:
        notes += render.notice_html(before.note)
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
        view,
    )


def judged_panels(state: AppState, shown: Shown, view: str) -> tuple[str, str]:
    """The summary (nDCG@10 before → after against the judgments as they are now) and the two lists with
    their grade controls, unjudged documents marked."""
    dataset = state.dataset(shown.corpus_key)  # the shipped qrels with the overlay merged over them
    result = shown.result
    qid, grades = query_judgments(dataset, result.query)
    ndcg = ndcg_before_after(result, qid, grades) if grades else None
    label = state.source(shown.corpus_key).label
    summary = render.summary_html(result, corpus_label=label, ndcg=ndcg, judged=len(grades) or None, models=shown.models)
    mine = set(state.judgments(shown.corpus_key).load().qrels.get(qid, {}))
    shipped = grades_of(state.shipped_dataset(shown.corpus_key), qid)
    left = unjudged(result, grades)
    bar = render.judging_bar_html(
        view, len(left), len(shown_documents(result)), result.top_n, state.overlay_used(shown.corpus_key)
    )
    lists = render.before_after_html(
        result, dataset.corpus, normalized=shown.normalized, judgments=grades, grading=state.can_judge(shown.corpus_key),
        mine=mine,
        shipped=shipped, before_heading=shown.before_heading,
    )
    return summary, bar + lists


def grade_view(state: AppState, view: str, doc_id: str, grade: int, judge: str | None = None) -> tuple[str, str]:
    """Save a grade, in the `judge`'s name, for a document of the lists `view` names; the summary and lists
    redrawn with it."""
    shown = _shown(state, view)
    state.judge(shown.corpus_key, shown.result.query, doc_id, grade, judge=judge)
    return judged_panels(state, shown, view)


def remove_grade_view(state: AppState, view: str, doc_id: str, judge: str | None = None) -> tuple[str, str, str]:
    """Remove the `judge`'s grade for a document of the lists `view` names: the summary and lists redrawn
    without it (a grade the corpus ships shows again), and what the removal did."""
    shown = _shown(state, view)
    report = state.unjudge(shown.corpus_key, shown.result.query, doc_id, judge=judge)
    return *judged_panels(state, shown, view), report.describe()


def _shown(state: AppState, view: str) -> Shown:
    shown = state.shown.get(view)
    if shown is None:
        raise ConfigError("These lists are no longer on the server (it restarted, or many searches ran since): "
                          "press Search, then grade again.")
    return shown


def judgment_files(state: AppState, corpus_key: str) -> tuple[str | None, str | None, int]:
    """The corpus's overlay as files to download: qrels.tsv, queries.jsonl when it holds queries the corpus
    lacks, and how many judgments the qrels hold. Copies are named by their content, so refreshing the
    buttons after every search writes nothing new until someone grades."""
    if not corpus_key:
        return None, None, 0
    overlay = state.judgments(corpus_key).load()
    name = overlay_name(state.open(corpus_key).base_key)  # a share link's token never names a file
    qrels_text, queries_text = overlay_texts(overlay)
    qrels = _download_copy(state, f"{name}.qrels.tsv", qrels_text)
    queries = _download_copy(state, f"{name}.queries.jsonl", queries_text) if queries_text is not None else None
    return qrels, queries, len(overlay)


def _download_copy(state: AppState, filename: str, text: str) -> str:
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
    path = state.scratch.folder(f"judgments-{digest}") / filename
    if not path.is_file():
        atomic_write_text(path, text)
    return str(path)


def merge_judgment_files(state: AppState, corpus_key: str, paths: Sequence[str], judge: str | None = None) -> str:
    """Merge uploaded qrels (.tsv/.txt) and queries (.jsonl) into the corpus's judgments as the `judge`'s grades;
    says what changed."""
    if not corpus_key:
        raise ConfigError("Pick a corpus first: judgments belong to one corpus.")
    if not paths:
        raise ConfigError("Choose a qrels file (.tsv: query-id, corpus-id, score) and, for new queries, its queries.jsonl.")
    files = [(Path(p).name, Path(p).read_bytes()) for p in paths]
    report = merge_grade_files(state.writable_judgments(corpus_key), state.shipped_dataset(corpus_key), files,
                               judge=getattr(state, "login", None) or judge)
    return report.message(state.source(corpus_key).label)


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


@dataclass(frozen=True)
class SearchPanels:
    """The Search tab's components every search updates (components on the page; any keys in tests)."""

    summary: Any
    notes: Any
    lists: Any
    journey: Any
    latency: Any

    def updates(self, view: SearchView) -> dict[Any, Any]:
        return {
            self.summary: view.summary,
            self.notes: view.notes,
            self.lists: view.lists,
            self.journey: view.journey,
            self.latency: view.latency,
        }


def search_handler(state: AppState, panels: SearchPanels, fills: Callable[[], Sequence[Any]] = tuple) -> Handler:
    """The page's search event: (corpus, query, *settings) -> updates keyed by component: the Search tab's
    `panels`, and whatever other tabs registered with `AppContext.fill_from_search` (`fills()`, read at each
    search so tabs built after Search count)."""

    @named_settings()
    @user_errors
    def on_search(corpus_key, query, *rest, progress=gr.Progress()):  # noqa: B008 - Gradio's progress injection
        """One query: the fused list before reranking and the cross-encoder's list after it, side by side (HTML),
        with a summary, notes, the rank journey and per-stage latency (plotly), and what other tabs show of it."""
        view = search_view(state, corpus_key, query, settings_from(rest), progress)
        return {**panels.updates(view), **{f.component: f.fill(view) for f in fills()}}

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


def opening_handler(state: AppState, search: Handler, lists: Any) -> Handler:
    """What the page runs when it opens (same inputs and outputs as `search`): the query in the box, the seed
    query or a deep link's, so the page opens on an answer. The results area (`lists`) first says what is
    being prepared; without a corpus or a query it asks for one. Updates are keyed by component."""

    @named_settings()
    def on_open(corpus_key, query, *rest, progress=gr.Progress()):  # noqa: B008 - Gradio's progress injection
        if not corpus_key or not (query or "").strip():
            yield {lists: placeholder_html(TYPE_A_QUERY)}
            return
        yield {lists: opening_notice(state, corpus_key)}
        yield search(corpus_key, query, *rest, progress=progress)

    return on_open


HELP = (
    "Hover a document to find it in both lists; click to pin it and open it in Chunks. "
    "Badges: ▲/▼ moved up/down within the top-n, ★ new in the top-n after reranking, ✖ dropped out of it, "
    "→ #k its rank after reranking, · not reranked: past the rerank depth (or the latency budget's cut). "
    "✓ marks documents judged relevant for the query, ? those nobody judged yet. Grade any document 0–3 with its "
    "buttons, or press 0–3 while pointing at a row or with a row pinned (↑/↓ move the pin): nDCG@10 follows at once. "
    "× (or Backspace/Delete) removes a grade made here; where the corpus ships a grade, that one applies again. "
    "Grades are saved for this corpus beside (never over) its shipped judgments, and Evaluate and `eval` use them."
)


def grade_handler(state: AppState, panels: SearchPanels, downloads: JudgmentDownloads) -> Handler:
    """A grade ({view, doc, grade}) or a removal ({view, doc, remove: true}) from the lists' script -> updates of
    the summary, the lists and the downloads. Both go through this one event, so they are applied in the order made."""

    @user_errors
    def on_grade(judge: str | None, evt: gr.EventData):
        data = getattr(evt, "_data", None) or {}
        try:
            view, doc = str(data["view"]), str(data["doc"])
            grade = None if data.get("remove") else int(data["grade"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"A grade needs a listed document and one of {', '.join(map(str, GRADES))}.") from None
        judge = getattr(state, "login", None) or judge_name(judge)
        if grade is None:
            summary, lists, message = remove_grade_view(state, view, doc, judge)
            gr.Info(render.esc(message))
        else:
            summary, lists = grade_view(state, view, doc, grade, judge)
        shown = state.shown.get(view)
        return {panels.summary: summary, panels.lists: lists,
                **download_updates(state, shown.corpus_key if shown else "", downloads)}

    return on_grade


@dataclass(frozen=True)
class JudgmentDownloads:
    """The two download buttons: the overlay's qrels and its new queries."""

    qrels: Any
    queries: Any


def download_updates(state: AppState, corpus_key: str, downloads: JudgmentDownloads) -> dict[Any, Any]:
    """Updates for the two download buttons: the overlay's qrels (with its count) and, when any, its new queries."""
    try:
        qrels, queries, count = judgment_files(state, corpus_key)
    except RerankLensError:
        return {}
    return {
        downloads.qrels: gr.update(value=qrels, label=f"Download judgments ({count}, qrels.tsv)"),
        downloads.queries: gr.update(value=queries, visible=queries is not None),
    }


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
            js_on_load=render.DOC_LIST_JS + render.JUDGE_JS,
        )
        ctx.doc_lists.append(lists)
        help_text(HELP)
        with gr.Row(elem_id="rl-judge-row"):
            download = gr.DownloadButton("Download judgments (qrels.tsv)", size="sm", scale=0, min_width=260,
                                         elem_id="rl-judge-download")
            queries_download = gr.DownloadButton("Their new queries (queries.jsonl)", size="sm", scale=0, min_width=240,
                                                 visible=False, elem_id="rl-judge-queries")
            upload = gr.UploadButton("Merge judgments from files…", file_types=[".tsv", ".txt", ".qrels", ".jsonl"],
                                     file_count="multiple", type="filepath", size="sm", scale=0, min_width=240,
                                     elem_id="rl-judge-upload")
        with gr.Row(equal_height=False):
            journey = gr.Plot(figures.empty_figure("The rank journey appears after a search."), show_label=False,
                              label="Rank journey", elem_id="rl-journey", scale=3)
            latency = gr.Plot(figures.empty_figure("Per-stage latency appears after a search."), show_label=False,
                              label="Latency", elem_id="rl-latency", scale=2)
    # The page wires its search triggers (button, Enter, examples, links) to this handler once every tab is built.
    panels = SearchPanels(summary, notes, lists, journey, latency)
    ctx.search = search_handler(ctx.state, panels, lambda: ctx.search_fills)
    ctx.search_outputs[:0] = [summary, notes, lists, journey, latency]
    ctx.opening = opening_handler(ctx.state, ctx.search, lists)

    # Judging: grades arrive one by one, in order (one at a time for every page, so the last grade wins),
    # and never wait behind a search.
    state = ctx.state
    downloads = JudgmentDownloads(download, queries_download)
    buttons = [download, queries_download]
    judge = [ctx.judge_name] if ctx.judge_name is not None else []
    lists.submit(grade_handler(state, panels, downloads), judge or None, [summary, lists, *buttons], api_visibility=PRIVATE,
                 trigger_mode="multiple", concurrency_limit=1, concurrency_id="judge", show_progress="hidden")
    ctx.after_search.append(FollowUp(lambda key: download_updates(state, key, downloads), [ctx.corpus], buttons))

    @user_errors
    def on_upload(paths, corpus_key, name=None):
        judge = getattr(state, "login", None) or judge_name(name) if ctx.judge_name is not None else None
        gr.Info(merge_judgment_files(state, corpus_key, [str(getattr(p, "name", p)) for p in paths or []], judge))
        return download_updates(state, corpus_key, downloads)

    merged = upload.upload(on_upload, [upload, ctx.corpus, *judge], buttons, api_visibility=PRIVATE)
    # Then the query on the page runs again, so its lists show the merged grades.
    ctx.link_to_search(merged.success, lambda corpus_key, query: (corpus_key, query), [ctx.corpus, ctx.query])
