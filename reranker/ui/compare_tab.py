"""The Compare tab: two cross-encoders (or two bi-encoders) on the same query, their agreement and latency.

`compare_view`, `agreement_html` and `cache_note` are plain (tested directly); `build_compare_tab` wires them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import gradio as gr
import plotly.graph_objects as go

from reranker.errors import ConfigError
from reranker.evaluation.compare import kendall_tau, rank_biased_overlap, top_k_overlap
from reranker.pipeline import AUTO, resolve_cross_encoder_spec
from reranker.types import StageTiming
from reranker.ui import figures, render
from reranker.ui.context import PRIVATE, AppContext, describe, tab
from reranker.ui.search_tab import ProgressFn, run_search
from reranker.ui.settings import Settings, model_choices, named_settings, settings_from, user_errors
from reranker.ui.state import AppState

KINDS = ("Cross-encoders", "Bi-encoders")


@dataclass(frozen=True)
class CompareView:
    agreement: str
    lists: str
    latency: go.Figure


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
    """Two cross-encoders (or two bi-encoders) on the same query: both lists, agreement, latency. Cross-encoders
    rerank the query's before list as Search does (an uploaded run's, when it ranks the query; a note says which)."""
    model_a, model_b = (model_a or "").strip(), (model_b or "").strip()
    if not model_a or not model_b:
        raise ConfigError("Pick two models to compare.")
    cross = _is_cross(kind)
    rows = []
    lists = []
    names = []
    notes = ""
    for spec in (model_a, model_b):
        if cross:
            resolved = resolve_cross_encoder_spec(spec)
            if resolved is None:
                raise ConfigError(f"{spec!r} does not name a cross-encoder available here; pick or type a model id.")
            pipeline, result, _, before = run_search(state, corpus_key, query, settings, progress, cross_encoder=resolved)
            notes = render.notice_html(before.note) if before.note else ""
            timing = result.timing("reranked") or StageTiming("reranked", 0.0)
            rows.append((resolved, timing.ms, timing.load_ms, timing.detail))
            lists.append(result.stages["reranked"])
            names.append(resolved)
        else:
            pipeline, result, loads, _ = run_search(  # the dense lists themselves, whatever the corpus's before list
                state, corpus_key, query, settings, progress, use_run=False, bi_encoder=spec, cross_encoder="none"
            )
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
    return CompareView(agreement + notes + cache_note(rows), html, figures.model_latency_figure(rows))


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


def model_pair(kind: str) -> tuple[list[tuple[str, str]], str | None, str | None]:
    """A picker's choices for `kind` and two distinct default models (auto and none are left out)."""
    choices = model_choices(_is_cross(kind))
    values = [v for _, v in choices if v not in (AUTO, "none")]
    a = values[0] if values else None
    b = values[1] if len(values) > 1 else a
    return choices, a, b


def _is_cross(kind: str) -> bool:
    return kind.lower().startswith("cross")


HELP = (
    "Two models on the same query and the same candidates. Rank agreement says how differently they order "
    "the documents; the latency chart shows what each costs per query and to load."
)


def build_compare_tab(ctx: AppContext) -> None:
    state = ctx.state
    with tab("Compare", "compare", HELP):
        choices, first, second = model_pair(KINDS[0])
        with gr.Row():
            kind = gr.Radio(list(KINDS), value=KINDS[0], label="Compare", scale=1)
            model_a = gr.Dropdown(choices, value=first, label="Model A", allow_custom_value=True, scale=3,
                                  elem_id="rl-model-a")
            model_b = gr.Dropdown(choices, value=second, label="Model B", allow_custom_value=True, scale=3,
                                  elem_id="rl-model-b")
        run = gr.Button("Compare", variant="primary", elem_id="rl-compare-btn")
        describe(kind, f"What the two models are: {' or '.join(repr(k) for k in KINDS)}.")
        for model in (model_a, model_b):
            describe(model, "A model of that kind: a hub id or a local directory (for cross-encoders also one of the "
                            "project's fine-tuned models).")
        agreement = gr.HTML(elem_id="rl-agreement")
        with gr.Row(equal_height=False):
            lists = gr.HTML(elem_id="rl-compare-lists", js_on_load=render.DOC_LIST_JS)
        ctx.doc_lists.append(lists)
        latency = gr.Plot(figures.empty_figure("Run a comparison to see each model's latency."), show_label=False,
                          elem_id="rl-compare-latency")

    @named_settings()
    @user_errors
    def on_compare(corpus_key, query, kind_value, model_a, model_b, *rest, progress=gr.Progress()):  # noqa: B008
        view = compare_view(state, corpus_key, query, kind_value, model_a, model_b, settings_from(rest), progress)
        return {agreement: view.agreement, lists: view.lists, latency: view.latency}

    @user_errors
    def on_kind(kind_value):
        pair_choices, a, b = model_pair(kind_value)
        return {model_a: gr.update(choices=pair_choices, value=a), model_b: gr.update(choices=pair_choices, value=b)}

    kind.change(on_kind, kind, [model_a, model_b], api_visibility=PRIVATE)
    run.click(on_compare, [ctx.corpus, ctx.query, kind, model_a, model_b, *ctx.settings], [agreement, lists, latency],
              api_name="compare")
