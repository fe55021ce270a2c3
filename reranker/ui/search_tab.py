"""Thin callbacks: parse widget values, call the package, return what the widgets show.

The `*_view` functions are plain (testable without Gradio's server); the `on_*` functions wrap
them for the page: package errors become `gr.Error` with their message (the fix included), and
anything unexpected is logged and shown as a short generic error, never a traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import plotly.graph_objects as go

from reranker.compare import kendall_tau, rank_biased_overlap, top_k_overlap
from reranker.errors import ConfigError, RerankLensError
from reranker.evaluate import evaluate_per_query, stage_run
from reranker.models import DEFAULT_BI_ENCODER
from reranker.pipeline import Pipeline, resolve_cross_encoder_spec
from reranker.types import PipelineResult, StageTiming
from reranker.ui import figures, render
from reranker.ui.state import AppState, example_queries, judgments_for, progress_listener

logger = logging.getLogger(__name__)

NORMALIZED_MODE = "sigmoid (0–1)"
RAW_MODE = "raw logit"
SCORE_MODES = (RAW_MODE, NORMALIZED_MODE)
LONGEST_DOCS = 5
LONG_DOC_CHARS = 2000  # roughly 400+ tokens: long enough to need several windows
ProgressFn = Callable[..., Any]


MODEL_BLEND = "model's recommendation"
BLEND_CHOICES = (MODEL_BLEND, *(f"{w / 10:g}" for w in range(11)))


def blend_weight(value: str | float | None) -> float | None:
    """None (the model card's recommendation) or a weight in [0, 1], from the blend picker's text."""
    if value is None or (isinstance(value, str) and value.strip() in {"", MODEL_BLEND}):
        return None
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"blend must be a number between 0 and 1 or {MODEL_BLEND!r}, not {value!r}") from None


@dataclass(frozen=True)
class Settings:
    """The pipeline settings a user can change in the page."""

    bi_encoder: str = DEFAULT_BI_ENCODER
    cross_encoder: str = "auto"
    retrieval_depth: int = 100
    rrf_k: int = 60
    rerank_depth: int = 30
    top_n: int = 10
    chunk_tokens: int = 400
    chunk_overlap: int = 100
    aggregation: str = "max"
    score_mode: str = RAW_MODE
    interpolation: str | float = MODEL_BLEND  # or a weight in [0, 1]
    budget_ms: float = 0.0  # 0 = no budget

    @property
    def normalized(self) -> bool:
        return self.score_mode == NORMALIZED_MODE

    def overrides(self, **changes: Any) -> dict[str, Any]:
        """Keyword overrides for `Pipeline.search`."""
        values = {
            "bi_encoder": (self.bi_encoder or DEFAULT_BI_ENCODER).strip(),
            "cross_encoder": (self.cross_encoder or "auto").strip(),
            "retrieval_depth": int(self.retrieval_depth),
            "rrf_k": int(self.rrf_k),
            "rerank_depth": int(self.rerank_depth),
            "top_n": int(self.top_n),
            "chunk_tokens": int(self.chunk_tokens),
            "chunk_overlap": int(self.chunk_overlap),
            "aggregation": self.aggregation,
            "interpolation": blend_weight(self.interpolation),
            "latency_budget_ms": float(self.budget_ms) if self.budget_ms else None,
        }
        values.update(changes)
        return values


SETTING_FIELDS = tuple(f for f in Settings.__dataclass_fields__)


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


@dataclass(frozen=True)
class ChunkView:
    figure: go.Figure
    text: str
    info: str


@dataclass(frozen=True)
class CompareView:
    agreement: str
    lists: str
    latency: go.Figure


def _progress_callback(progress: ProgressFn | None, label: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        progress((done, total), desc=f"{label}: {done:,} / {total:,} documents", unit="docs")

    return report


def _pipeline(state: AppState, corpus_key: str, progress: ProgressFn | None) -> Pipeline:
    if not corpus_key:
        raise ConfigError("Pick a corpus first (or upload one).")
    if progress is not None and not state.is_ready(corpus_key):
        size = len(state.dataset(corpus_key).corpus)
        progress(
            0.0,
            desc=f"First use of {state.source(corpus_key).label}: building BM25 and embedding {size:,} documents "
            "(embeddings are cached on disk for next time)…",
        )
    return state.pipeline(corpus_key, _progress_callback(progress, "Encoding the corpus"))


def _search(
    state: AppState, corpus_key: str, query: str, settings: Settings, progress: ProgressFn | None, **changes: Any
) -> tuple[Pipeline, PipelineResult, list[StageTiming]]:
    fresh = bool(corpus_key) and not state.is_ready(corpus_key)
    pipeline = _pipeline(state, corpus_key, progress)
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
    pipeline, result, loads = _search(state, corpus_key, query, settings, progress)
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
        choices.append((f"#{hit.rank} {_short(render.title_of(doc))}{windows}", hit.doc_id))
        if default is None and len(hit.chunks) > 1:
            default = hit.doc_id
    shown = {value for _, value in choices}
    longest = sorted(corpus.documents, key=lambda d: len(d.full_text), reverse=True)[:LONGEST_DOCS]
    longest = [doc for doc in longest if len(doc.full_text) >= LONG_DOC_CHARS]
    for doc in longest:
        if doc.id not in shown:
            choices.append((f"long: {_short(render.title_of(doc))} ({len(doc.full_text):,} chars)", doc.id))
    if default is None and choices:
        default = choices[0][1]
    return choices, default


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chunk_view(
    state: AppState, corpus_key: str, query: str, doc_id: str | None, settings: Settings, progress: ProgressFn | None = None
) -> ChunkView:
    """Per-window cross-encoder scores for one document, its text with the deciding window and the cut."""
    if not doc_id:
        return ChunkView(figures.empty_figure("Run a search, then pick a document."), "", "")
    pipeline = _pipeline(state, corpus_key, progress)
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
    query = " ".join((query or "").split())
    if not query:
        raise ConfigError("The query is empty: type a question or some keywords.")
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
        title=f"Score per window — {_short(title, 70)}",
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
    text = render.chunk_text_html(doc, score.chunks, score.deciding_chunk, score.truncated_at)
    return ChunkView(fig, text, info)


def compare_view(
    state: AppState,
    corpus_key: str,
    query: str,
    kind: str,
    model_a: str,
    model_b: str,
    settings: Settings,
    progress: ProgressFn | None = None,
) -> CompareView:
    """Two cross-encoders (or two bi-encoders) on the same query: both lists, agreement, latency."""
    model_a, model_b = (model_a or "").strip(), (model_b or "").strip()
    if not model_a or not model_b:
        raise ConfigError("Pick two models to compare.")
    cross = kind.lower().startswith("cross")
    rows = []
    lists = []
    names = []
    for spec in (model_a, model_b):
        if cross:
            resolved = resolve_cross_encoder_spec(spec)
            if resolved is None:
                raise ConfigError(f"{spec!r} does not name a cross-encoder available here; pick or type a model id.")
            pipeline, result, _ = _search(state, corpus_key, query, settings, progress, cross_encoder=resolved)
            timing = result.timing("reranked") or StageTiming("reranked", 0.0)
            rows.append((resolved, timing.ms, timing.load_ms, timing.detail))
            lists.append(result.stages["reranked"])
            names.append(resolved)
        else:
            pipeline, result, loads = _search(state, corpus_key, query, settings, progress, bi_encoder=spec, cross_encoder="none")
            timing = result.timing("dense") or StageTiming("dense", 0.0)
            load = sum(t.load_ms for t in loads if t.stage == "dense index")
            rows.append((spec, timing.ms, load, timing.detail))
            lists.append(result.stages["dense"])
            names.append(spec)
    top_n = int(settings.top_n)
    a_ids, b_ids = lists[0].doc_ids(), lists[1].doc_ids()
    agreement = agreement_html(a_ids, b_ids, top_n, cross)
    html = render.side_by_side_html(
        (f"A: {names[0]}", lists[0]),
        (f"B: {names[1]}", lists[1]),
        pipeline.corpus,
        top_n,
        normalized=settings.normalized and cross,
    )
    return CompareView(agreement + cache_note(rows), html, figures.model_latency_figure(rows))


def cache_note(rows: list[tuple[str, float, float, str]]) -> str:
    """Say when a model's time is low because its scores came from the score cache."""
    notes = []
    for name, _, _, detail in rows:
        windows = re.search(r"(\d+) windows", detail)
        cached = re.search(r"(\d+) from cache", detail)
        if windows and cached and int(cached.group(1)) > 0:
            notes.append(
                f"{name}: {cached.group(1)} of {windows.group(1)} windows came from the score cache (an earlier query "
                "scored them), so its time is mostly tokenisation."
            )
    return "".join(render.notice_html(n, "info") for n in notes)


def agreement_html(a: list[str], b: list[str], top_n: int, cross: bool) -> str:
    """Kendall's tau over the shared documents, top-n overlap and RBO, each with its scale."""
    tau = kendall_tau(a, b)
    k = max(1, min(top_n, len(a), len(b)))
    overlap = top_k_overlap(a, b, k)
    rbo = rank_biased_overlap(a[:top_n], b[:top_n])
    scope = f"the {len(set(a) & set(b))} documents both models ranked" + (" (the same candidates)" if cross else "")
    cells = [
        ("Kendall τ", f"{tau:+.3f}", f"rank correlation over {scope}; 1 = same order, 0 = unrelated, −1 = reversed"),
        (f"Top-{k} overlap", f"{overlap:.0%}", f"share of documents in both top-{k} lists"),
        ("RBO (p = 0.9)", f"{rbo:.3f}", "rank-biased overlap of the top lists, weighting the top ranks most; 0 to 1"),
    ]
    body = "".join(
        f'<div class="rl-stat" title="{render.esc(help_)}"><div class="rl-stat-value">{render.esc(value)}</div>'
        f'<div class="rl-stat-name">{render.esc(name)}</div><div class="rl-stat-help">{render.esc(help_)}</div></div>'
        for name, value, help_ in cells
    )
    return f'<div class="rl-stats">{body}</div>'


def corpus_info_html(state: AppState, corpus_key: str) -> str:
    dataset = state.dataset(corpus_key)
    judged = sum(len(q) for q in dataset.qrels.values())
    parts = [f"<b>{len(dataset.corpus):,}</b> documents"]
    if dataset.queries:
        parts.append(f"<b>{len(dataset.queries):,}</b> queries")
    if judged:
        parts.append(f"relevance judgments for <b>{judged:,}</b> queries ({render.esc(', '.join(sorted(dataset.qrels)))})")
    else:
        parts.append("no relevance judgments")
    return '<div class="rl-corpus-info">' + " · ".join(parts) + "</div>"


# --- Gradio wrappers -------------------------------------------------------------------------


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Package errors -> gr.Error with their message; anything else -> logged + a generic gr.Error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except RerankLensError as exc:
            raise gr.Error(page_message(exc), title=_error_title(exc), duration=30, print_exception=False) from None
        except Exception:  # the page must never show a traceback
            logger.exception("unexpected error in %s", getattr(fn, "__name__", "callback"))
            raise gr.Error(
                "Something went wrong on the server; the details are in its log. Try again or change a setting."
            ) from None

    return wrapper


def page_message(exc: Exception) -> str:
    """The message as the page's toast shows it (it renders HTML): escaped, line breaks kept."""
    return render.esc(str(exc)).replace("\n", "<br>")


def _error_title(exc: RerankLensError) -> str:
    names = {"ModelUnavailableError": "Model not available", "DataError": "Data problem", "ConfigError": "Check the input"}
    return names.get(type(exc).__name__, "Cannot do that")


def settings_from(values: tuple[Any, ...]) -> Settings:
    return Settings(**dict(zip(SETTING_FIELDS, values, strict=True)))


def make_callbacks(state: AppState) -> dict[str, Callable[..., Any]]:
    """The page's event handlers, bound to one AppState."""

    @user_errors
    def on_search(corpus_key, query, *rest, progress=gr.Progress()):  # noqa: B008 - Gradio's progress injection
        view = search_view(state, corpus_key, query, settings_from(rest), progress)
        return (
            view.summary,
            view.notes,
            view.lists,
            view.journey,
            view.latency,
            gr.update(choices=view.doc_choices, value=view.doc_value),
        )

    @user_errors
    def on_chunks(corpus_key, query, doc_id, *rest, progress=gr.Progress()):  # noqa: B008
        view = chunk_view(state, corpus_key, query, doc_id, settings_from(rest), progress)
        return view.figure, view.text, view.info

    @user_errors
    def on_compare(corpus_key, query, kind, model_a, model_b, *rest, progress=gr.Progress()):  # noqa: B008
        view = compare_view(state, corpus_key, query, kind, model_a, model_b, settings_from(rest), progress)
        return view.agreement, view.lists, view.latency

    @user_errors
    def on_corpus(corpus_key):
        if not corpus_key:
            return gr.update(choices=[], value=None), ""
        dataset = state.dataset(corpus_key)
        examples = example_queries(dataset)
        return gr.update(choices=examples, value=None), corpus_info_html(state, corpus_key)

    @user_errors
    def on_upload(file, current_key):
        if file is None:
            return gr.update()
        path = getattr(file, "name", file)
        import os

        display = os.path.basename(str(path))
        try:
            source = state.add_upload(path, display)
        except RerankLensError as exc:
            gr.Warning(f"Upload rejected; the previous corpus stays selected.<br>{page_message(exc)}", duration=30)
            return gr.update(value=current_key)
        gr.Info(f"Loaded {source.label}.")
        return gr.update(choices=state.choices(), value=source.key)

    @user_errors
    def on_compare_kind(kind):
        from reranker.ui.layout import model_choices

        cross = kind.lower().startswith("cross")
        choices = model_choices(cross)
        values = [v for _, v in choices if v not in ("auto", "none")]
        a = values[0] if values else None
        b = values[1] if len(values) > 1 else a
        return gr.update(choices=choices, value=a), gr.update(choices=choices, value=b)

    return {
        "search": on_search,
        "chunks": on_chunks,
        "compare": on_compare,
        "corpus": on_corpus,
        "upload": on_upload,
        "compare_kind": on_compare_kind,
    }
