"""The Trade-offs tab: ranking quality against latency for every rerank depth, model and blend on a split's
judged queries, with the Pareto front, the best configuration within a latency budget, and JSON/CSV downloads.

The sweep and everything shown are computed by `reranker.evaluation.tradeoffs`; `TradeoffsView` owns the
sweeps' cache and the per-session cancel flags, and its `*_html` / `tradeoffs_figure` functions are plain and
tested directly. The handlers return dicts keyed by this tab's own components.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import gradio as gr
import plotly.graph_objects as go

from reranker.errors import ConfigError, RerankLensError
from reranker.evaluation.analysis import EvaluationCancelled
from reranker.evaluation.export import write_text
from reranker.evaluation.tradeoffs import (
    DEFAULT_BLENDS,
    DEFAULT_DEPTHS,
    NO_RERANKING,
    Point,
    SweepCache,
    SweepResult,
    SweepSettings,
    default_models,
    parse_numbers,
    short_model,
    sweep,
    sweep_csv,
)
from reranker.models import PROJECT_MODELS
from reranker.ui.context import PRIVATE, AppContext, describe, tab
from reranker.ui.figures import GRID, INK, MUTED, PALETTE, _hover_safe, _layout, empty_figure
from reranker.ui.render import esc, notice_html
from reranker.ui.settings import user_errors
from reranker.ui.state import AppState

HELP = (
    "Which model, how deep, with what blend, at what latency on this machine? The sweep scores each query's "
    "windows once per model, derives every shallower depth and blend from those scores, and times each query "
    "(first stage included, score cache off). The chart plots nDCG@10 against the median latency; the line joins "
    "the Pareto front, the configurations nothing beats on both. The recommendation is the best configuration "
    "whose median latency fits the budget, with what it loses against the best overall and whether that loss is "
    "significant. Keep the query count small for a quick look: every model scores every query's candidates."
)
FRONT_COLOUR = "#111827"
MAX_SESSIONS = 256
LATENCY_TICKS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000)


class TradeoffsView:
    """Runs sweeps for the page: a bounded cache of results and a cancel flag per browser session."""

    def __init__(self, state: AppState, cache: SweepCache | None = None) -> None:
        self.state = state
        self.cache = cache or SweepCache()
        self._flags: OrderedDict[str, threading.Event] = OrderedDict()
        self._lock = threading.Lock()

    def stop_flag(self, session: str) -> threading.Event:
        with self._lock:
            flag = self._flags.setdefault(session, threading.Event())
            self._flags.move_to_end(session)
            while len(self._flags) > MAX_SESSIONS:
                self._flags.popitem(last=False)
            return flag

    def run(
        self,
        corpus_key: str,
        split: str,
        models: Sequence[str],
        depths: str,
        blends: str,
        budget_ms: float | None,
        limit: int | None,
        *,
        progress: Callable[[int, int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[SweepResult, bool]:
        """The sweep (from the cache when corpus, split, queries and settings are unchanged), and whether it was cached."""
        if not corpus_key:
            raise ConfigError("Pick a corpus first.")
        dataset = self.state.dataset(corpus_key)
        if not dataset.qrels:
            raise ConfigError(
                f"{self.state.source(corpus_key).label} has no relevance judgments, so quality cannot be measured. "
                "Add qrels/<split>.tsv (query-id, corpus-id, grade) and queries.jsonl to a BEIR folder."
            )
        if split not in dataset.qrels:
            raise ConfigError(f"this corpus has no split {split!r}; pick one of {', '.join(sorted(dataset.qrels))}")
        settings = SweepSettings(
            models=tuple(m.strip() for m in models or () if m and m.strip()),
            depths=parse_numbers(depths or "", int, "Depths"),
            blends=parse_numbers(blends or "", float, "Blends"),
            budget_ms=float(budget_ms) if budget_ms else None,
        )
        settings.validate()
        queries = dataset.split_queries(split)
        qrels = dataset.split_qrels(split)
        judged = [q for q in queries if any(g > 0 for g in qrels.get(q, {}).values())]
        if limit:
            judged = judged[: int(limit)]
        queries = {q: queries[q] for q in judged}
        pipeline = self.state.pipeline(corpus_key)
        label = self.state.source(corpus_key).label
        key = self.cache.key(pipeline, label, split, queries, qrels, settings)
        cached = self.cache.get(key)
        if cached is not None:
            return cached, True
        result = sweep(pipeline, queries, qrels, settings, dataset=label, split=split, progress=progress,
                       should_stop=should_stop)  # fmt: skip
        self.cache.put(key, result)
        return result, False


def model_choices() -> list[str]:
    """The pickers' suggestions: the offline family and its cascade, then every other registered model."""
    defaults = list(default_models())
    return [*defaults, *(m for m in PROJECT_MODELS if m not in defaults)]


# ---------------------------------------------------------------- what the tab shows


def tradeoffs_figure(result: SweepResult) -> go.Figure:
    """nDCG@10 against p50 latency, one colour per model (marker size grows with depth), the Pareto front
    joined by a line, the budget as a dashed line and the recommendation ringed."""
    fig = go.Figure()
    models = list(dict.fromkeys(p.model for p in result.points if p.depth))
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}
    colours[NO_RERANKING] = MUTED
    symbols = {b: s for b, s in zip(sorted({p.blend for p in result.points}), ("circle", "diamond", "square", "triangle-up",
                                                                             "cross", "x", "star"), strict=False)}  # fmt: skip
    for model in [NO_RERANKING, *models]:
        points = [p for p in result.points if p.model == model]
        if not points:
            continue
        fig.add_trace(
            go.Scatter(
                x=[p.p50_ms for p in points],
                y=[p.ndcg for p in points],
                mode="markers",
                name="fused, no reranking" if model == NO_RERANKING else _hover_safe(short_model(model)),
                marker={"color": colours[model], "size": [8 + min(p.depth, 100) / 8 for p in points],
                        "symbol": [symbols.get(p.blend, "circle") for p in points], "opacity": 0.85,
                        "line": {"width": 1, "color": "white"}},
                customdata=[[p.depth, p.blend, p.recall, p.p95_ms] for p in points],
                hovertemplate=f"<b>{_hover_safe(short_model(model))}</b><br>depth %{{customdata[0]}}, blend %{{customdata[1]}}"
                "<br>nDCG@10 %{y:.4f} · recall@10 %{customdata[2]:.3f}<br>p50 %{x:.0f} ms · p95 %{customdata[3]:.0f} ms"
                "<extra></extra>",
            )
        )  # fmt: skip
    front = list(result.front)
    fig.add_trace(
        go.Scatter(
            x=[p.p50_ms for p in front], y=[p.ndcg for p in front], mode="lines", name="Pareto front",
            line={"color": FRONT_COLOUR, "width": 1.5, "shape": "hv"}, hoverinfo="skip",
        )
    )  # fmt: skip
    budget = result.settings.budget_ms
    if budget is not None and budget <= max(p.p50_ms for p in result.points) * 3:
        fig.add_vline(x=budget, line={"color": "#dc2626", "width": 1.2, "dash": "dash"})
        # On a log axis an annotation's x is the exponent (add_vline's own label would land off the chart).
        fig.add_annotation(x=math.log10(budget), y=0, yref="paper", text=f" budget {budget:g} ms", showarrow=False,
                           xanchor="left", yanchor="bottom", font={"color": "#dc2626", "size": 11})  # fmt: skip
    if result.recommendation is not None:
        chosen = result.recommendation.point
        fig.add_trace(
            go.Scatter(
                x=[chosen.p50_ms], y=[chosen.ndcg], mode="markers", name="recommended",
                marker={"size": 22, "color": "rgba(0,0,0,0)", "line": {"width": 2.5, "color": "#dc2626"}},
                hoverinfo="skip",
            )
        )  # fmt: skip
    latencies = [p.p50_ms for p in result.points]
    ticks = [t for t in LATENCY_TICKS if min(latencies) / 3 <= t <= max(latencies) * 3]
    fig.update_xaxes(title={"text": "median latency per query, p50 (ms, log scale)"}, type="log", gridcolor=GRID,
                     range=_log_range([p.p50_ms for p in result.points], budget), tickvals=ticks,
                     ticktext=[f"{t:,} ms" if t < 1000 else f"{t / 1000:g} s" for t in ticks])
    fig.update_yaxes(title={"text": "nDCG@10 (0 to 1, higher is better)"}, gridcolor=GRID,
                     range=_padded([p.ndcg for p in result.points]))
    fig.update_layout(legend={"font": {"size": 11}, "orientation": "v", "x": 1.02, "y": 1}, font={"color": INK})
    blends = ", ".join(f"{s.replace('-up', '')} = blend {b:g}" for b, s in symbols.items())
    title = f"Quality against latency: {result.queries} queries of {result.dataset} ({result.split}); {blends}"
    return _layout(fig, title, 480)


def _log_range(values: Sequence[float], budget: float | None) -> list[float]:
    """The x range (log10) around the points, and the budget when it is near them (a far one would squash them)."""
    low, high = max(min(values), 0.1), max(max(values), 0.1)
    if budget is not None and budget <= high * 3:
        low, high = min(low, budget), max(high, budget)
    return [math.log10(low / 1.3), math.log10(high * 1.3)]


def _padded(values: Sequence[float]) -> list[float]:
    low, high = min(values), max(values)
    pad = max((high - low) * 0.12, 0.01)
    return [low - pad, high + pad]


def recommendation_html(result: SweepResult, cached: bool = False) -> str:
    """The recommendation in one sentence (or why there is none), the machine, and how latency was measured."""
    kind = "info" if result.recommendation is not None else "warn"
    head = "Recommendation" if result.recommendation is not None else "No recommendation"
    budget = f"p50 budget {result.settings.budget_ms:g} ms" if result.settings.budget_ms is not None else "no latency budget"
    m = result.machine
    notes = [
        f"<div class='rl-notice rl-notice-{kind}' id='rl-tradeoffs-recommendation'><b>{head}</b> ({esc(budget)}): "
        f"{esc(result.reason)}.</div>",
        f"<p class='rl-help'>Measured on this machine: {esc(str(m.get('cpu')))}, {esc(str(m.get('cores')))} cores, "
        f"{esc(str(m.get('device')))}; {result.queries} judged queries, {result.pairs_scored} (query, window) pairs, "
        f"each scored once (score cache off), in {result.wall_s:.0f} s. Latency per query = first stage (BM25, dense, "
        "RRF) + the measured time of the pairs the configuration needs. Other work on the machine makes it slower.</p>",
    ]
    if cached:
        notes.insert(0, notice_html("Shown from the cache: this corpus, split, queries and settings were swept before."))
    return "".join(notes)


def points_table_html(result: SweepResult) -> str:
    """Every configuration, fastest first; front rows marked ★ and the recommendation →."""
    front = {p.key for p in result.front}
    chosen = result.recommendation.point.key if result.recommendation else None
    rows = []
    for p in sorted(result.points, key=lambda p: (p.p50_ms, -p.ndcg)):
        mark = ("→ " if p.key == chosen else "") + ("★" if p.key in front else "")
        rows.append(
            f"<tr><td>{mark}</td><td>{esc(_model_label(p))}</td><td>{p.depth}</td><td>{p.blend:g}</td>"
            f"<td>{p.ndcg:.4f}</td><td>{p.recall:.3f}</td><td>{p.p50_ms:.0f}</td><td>{p.p95_ms:.0f}</td></tr>"
        )
    return (
        "<div id='rl-tradeoffs-table'><table class='rl-eval'><tr><th></th><th>model</th><th>depth</th><th>blend</th>"
        "<th>nDCG@10</th><th>recall@10</th><th>p50 ms</th><th>p95 ms</th></tr>"
        f"{''.join(rows)}</table><p class='rl-help'>★ Pareto front: no other configuration is both better and faster. "
        "→ the recommendation. Depth: fused candidates the cross-encoder reads. Blend: weight of the fused score "
        "mixed into the cross-encoder's (0 = cross-encoder alone).</p></div>"
    )


def _model_label(point: Point) -> str:
    return "fused (no reranking)" if point.depth == 0 else point.model


def write_downloads(result: SweepResult, folder: Path | None = None) -> list[str]:
    """The sweep as JSON (as `tradeoffs --json` prints it) and CSV, in `folder` (the app's scratch folder for this
    sweep; a fresh temporary one without it)."""
    folder = folder or Path(tempfile.mkdtemp(prefix="rerank-lens-tradeoffs-"))
    return [
        str(write_text(folder / "tradeoffs.json", json.dumps(result.as_dict(), indent=2))),
        str(write_text(folder / "tradeoffs.csv", sweep_csv(result))),
    ]


# ---------------------------------------------------------------- wiring


def build_tradeoffs_tab(ctx: AppContext) -> None:
    view = TradeoffsView(ctx.state)
    with tab("Trade-offs", "tradeoffs", HELP):
        with gr.Row():
            split = gr.Dropdown(["test", "train"], value="test", label="Split", allow_custom_value=True, scale=1,
                                elem_id="rl-tradeoffs-split")
            limit = gr.Number(value=20, precision=0, minimum=0, label="Queries (0 = all)", scale=1,
                              elem_id="rl-tradeoffs-limit")
            budget = gr.Number(value=0, minimum=0, label="Latency budget, p50 (ms, 0 = none)", scale=1,
                               elem_id="rl-tradeoffs-budget")
        with gr.Row():
            models = gr.Dropdown(model_choices(), value=list(default_models()), multiselect=True, allow_custom_value=True,
                                 label="Models", scale=3, elem_id="rl-tradeoffs-models",
                                 info="Cross-encoders (a hub id or local directory) and cascade:COARSE+FINE.")
            depths = gr.Textbox(",".join(map(str, DEFAULT_DEPTHS)), label="Rerank depths", scale=1,
                                elem_id="rl-tradeoffs-depths", info="Comma-separated; 0 = fused, no reranking.")
            blends = gr.Textbox(",".join(f"{b:g}" for b in DEFAULT_BLENDS), label="Blends", scale=1,
                                elem_id="rl-tradeoffs-blends", info="Weight of the fused score, 0 to 1.")
        describe(split, "The split of the corpus's relevance judgments whose queries are swept, e.g. test.")
        describe(limit, "Judged queries to sweep, the first ones of the split; 0: all of them.")
        describe(budget, "The p50 latency budget in milliseconds the recommendation must fit; 0: none.")
        describe(models, "Cross-encoders to sweep: hub ids, local directories, registered names, cascade:COARSE+FINE.")
        describe(depths, "Rerank depths, comma-separated, e.g. 0,10,20,50 (0: the fused list without reranking).")
        describe(blends, "Blend weights of the z-scored fused score, comma-separated, 0 to 1, e.g. 0,0.5.")
        with gr.Row():
            run = gr.Button("Run the sweep", variant="primary", elem_id="rl-tradeoffs-run")
            cancel = gr.Button("Cancel", variant="stop", elem_id="rl-tradeoffs-cancel")
        summary = gr.HTML(elem_id="rl-tradeoffs-summary")
        plot = gr.Plot(empty_figure("Run the sweep to plot quality against latency."), show_label=False,
                       elem_id="rl-tradeoffs-plot")
        table = gr.HTML(elem_id="rl-tradeoffs-points")
        files = gr.File(label="Downloads (JSON, CSV)", file_count="multiple", interactive=False, elem_id="rl-tradeoffs-files")

    @user_errors
    def on_run(corpus_key, split_value, limit_value, budget_value, model_values, depth_text, blend_text,
               progress=gr.Progress(), request: gr.Request = None):  # noqa: B008 - Gradio's injection
        flag = view.stop_flag(getattr(request, "session_hash", None) or "default")
        flag.clear()

        def report(done: int, total: int, label: str) -> None:
            progress((done, total), desc=f"Sweeping: {done} / {total} queries", unit="queries")

        try:
            result, cached = view.run(corpus_key, split_value, model_values or [], depth_text, blend_text, budget_value,
                                      int(limit_value or 0), progress=report, should_stop=flag.is_set)  # fmt: skip
        except EvaluationCancelled as exc:
            return {summary: notice_html(f"Sweep cancelled ({exc}); nothing was cached.", "warn")}
        return {
            summary: recommendation_html(result, cached),
            plot: tradeoffs_figure(result),
            table: points_table_html(result),
            files: write_downloads(result, view.state.scratch.new_folder("tradeoffs")),
        }

    def on_cancel(request: gr.Request = None):
        view.stop_flag(getattr(request, "session_hash", None) or "default").set()

    def on_corpus(corpus_key):
        try:
            splits = sorted(view.state.dataset(corpus_key).qrels, key=lambda s: s != "test") if corpus_key else []
        except RerankLensError:  # a corpus that cannot load says so in the other tabs
            splits = []
        return {split: gr.update(choices=splits or ["test"], value=splits[0] if splits else "test")}

    # One sweep at a time (CPU-bound). Cancel stops it between queries (the flag) and drops the pending event.
    event = run.click(on_run, [ctx.corpus, split, limit, budget, models, depths, blends], [summary, plot, table, files],
                      api_name="tradeoffs", concurrency_limit=1, concurrency_id="tradeoffs")  # fmt: skip
    cancel.click(on_cancel, None, None, api_visibility=PRIVATE, queue=False, cancels=[event])
    ctx.corpus.change(on_corpus, ctx.corpus, [split], api_visibility=PRIVATE)
