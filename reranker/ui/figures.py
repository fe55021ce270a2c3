"""Plotly figures: rank journey across stages, per-stage latency, chunk scores, model latency."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from reranker.corpus import Corpus
from reranker.types import ChunkScore, PipelineResult, StageTiming
from reranker.ui.render import format_score, stage_name, title_of

FONT = "IBM Plex Sans, ui-sans-serif, system-ui, -apple-system, Segoe UI, sans-serif"
INK = "#1f2937"
MUTED = "#6b7280"
ACCENT = "#4f46e5"
LOAD = "#f59e0b"
GRID = "#e5e7eb"
PALETTE = ("#4f46e5", "#0891b2", "#059669", "#d97706", "#dc2626", "#7c3aed", "#db2777", "#2563eb", "#65a30d", "#ea580c")


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": plain(title), "x": 0, "xanchor": "left", "font": {"size": 15, "color": INK}},
        font={"family": FONT, "size": 12, "color": INK},
        paper_bgcolor="white",
        plot_bgcolor="white",
        height=height,
        margin={"l": 10, "r": 20, "t": 50, "b": 40},
        hoverlabel={"font": {"family": FONT}},
    )
    fig.update_xaxes(gridcolor=GRID, zerolinecolor=GRID, automargin=True)
    fig.update_yaxes(gridcolor=GRID, zerolinecolor=GRID, automargin=True)
    return fig


def empty_figure(message: str, height: int = 260) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font={"size": 13, "color": MUTED}, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, "", height)


def rank_journey(result: PipelineResult, corpus: Corpus, top: int = 10) -> go.Figure:
    """Each final top document's rank through BM25, dense, RRF and the cross-encoder (log scale)."""
    stages = list(result.stages)
    depth = max((len(r) for r in result.stages.values()), default=1)
    missing = depth * 1.6 + 1  # plotted below the deepest rank, labelled "not retrieved"
    fig = go.Figure()
    for i, doc_id in enumerate(result.after.doc_ids()[:top]):
        doc = corpus.get(doc_id)
        label = title_of(doc) if doc else doc_id
        short = label if len(label) <= 38 else label[:37] + "…"
        ranks = result.ranks(doc_id)
        ys = [ranks[s] if ranks[s] is not None else missing for s in stages]
        text = [f"#{ranks[s]}" if ranks[s] is not None else "not retrieved" for s in stages]
        fig.add_trace(
            go.Scatter(
                x=[stage_name(s) for s in stages],
                y=ys,
                mode="lines+markers",
                name=f"{i + 1}. {plain(short)}",
                line={"width": 2.5 if i < 3 else 1.5, "color": PALETTE[i % len(PALETTE)]},
                marker={"size": 9 if i < 3 else 7},
                customdata=text,
                hovertemplate=f"<b>{_hover_safe(short)}</b><br>%{{x}}: %{{customdata}}<extra></extra>",
            )
        )
    ticks = [t for t in (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= depth]
    fig.update_yaxes(
        type="log",
        autorange="reversed",
        tickvals=[*ticks, missing],
        ticktext=[f"#{t}" for t in ticks] + ["not retrieved"],
        title={"text": "rank (log scale, 1 at top)"},
    )
    fig.update_layout(legend={"font": {"size": 11}, "orientation": "v", "x": 1.02, "y": 1})
    _layout(fig, "Rank journey of the final top documents", 420)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 50, "b": 40})
    return fig


def plain(text: str) -> str:
    """Corpus text for plotly labels: its tags (<a>, <b>, <br>) must show as text, not format."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _hover_safe(text: str) -> str:
    """Also keep plotly's %{...} template syntax out of a hovertemplate."""
    return plain(text).replace("%", "%%").replace("{", "(").replace("}", ")")


def latency_figure(timings: Sequence[StageTiming], loads: Sequence[StageTiming] = (), title: str | None = None) -> go.Figure:
    """Per-stage query latency in ms; model loads and index builds as separate, differently coloured bars."""
    rows: list[tuple[str, float, str, str]] = []
    for t in timings:
        rows.append((stage_name(t.stage), t.ms, "query", t.detail))
    for t in [*loads, *timings]:
        if t.load_ms > 0:
            rows.append((f"{stage_name(t.stage)} — first load", t.load_ms, "load", t.detail))
    if not rows:
        return empty_figure("No timings yet.")
    fig = go.Figure()
    for kind, color, name in (("query", ACCENT, "this query"), ("load", LOAD, "first load (once per process)")):
        subset = [r for r in rows if r[2] == kind]
        if not subset:
            continue
        fig.add_trace(
            go.Bar(
                y=[r[0] for r in subset],
                x=[r[1] for r in subset],
                orientation="h",
                name=name,
                marker={"color": color},
                text=[_ms(r[1]) for r in subset],
                textposition="outside",
                cliponaxis=False,
                customdata=[r[3] for r in subset],
                hovertemplate="%{y}: %{x:.1f} ms<br>%{customdata}<extra></extra>",
            )
        )
    order = [r[0] for r in rows]
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(order)))
    longest = max(r[1] for r in rows)
    fig.update_xaxes(title={"text": "milliseconds (wall clock)"}, range=[0, longest * 1.25 + 1])
    query_total = sum(t.ms for t in timings)
    heading = title or f"Latency per stage — {_ms(query_total)} for this query"
    fig.update_layout(barmode="overlay", bargap=0.35, legend={"orientation": "h", "y": -0.25, "x": 0})
    return _layout(fig, heading, 140 + 38 * len(rows))


def model_latency_figure(rows: Sequence[tuple[str, float, float, str]]) -> go.Figure:
    """(model, inference ms, first-load ms, detail) per model, side by side."""
    if not rows:
        return empty_figure("Run a comparison to see each model's latency.")
    names = [r[0] for r in rows]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(y=names, x=[r[1] for r in rows], orientation="h", name="scoring this query", marker={"color": ACCENT},
               text=[_ms(r[1]) for r in rows], textposition="outside", cliponaxis=False,
               customdata=[r[3] for r in rows], hovertemplate="%{y}: %{x:.1f} ms<br>%{customdata}<extra>scoring</extra>")
    )
    if any(r[2] > 0 for r in rows):
        fig.add_trace(
            go.Bar(y=names, x=[r[2] for r in rows], orientation="h", name="first load (once per process)",
                   marker={"color": LOAD}, text=[_ms(r[2]) if r[2] else "" for r in rows], textposition="outside",
                   cliponaxis=False, hovertemplate="%{y}: %{x:.1f} ms<extra>first load</extra>")
        )
    longest = max(max(r[1], r[2]) for r in rows)
    fig.update_xaxes(title={"text": "milliseconds (wall clock)"}, range=[0, longest * 1.3 + 1])
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.35, "x": 0})
    return _layout(fig, "Latency per model", 150 + 60 * len(rows))


def chunk_scores_figure(
    chunks: Sequence[ChunkScore],
    deciding: int | None,
    truncated_at: int | None,
    *,
    title: str,
    normalized: bool = False,
) -> go.Figure:
    """One bar per token window; the deciding window stands out; a dashed line where truncation cuts."""
    if not chunks:
        return empty_figure("No chunk scores: this document was not scored.")
    values = [(1 / (1 + math.exp(-c.raw)) if normalized else c.raw) for c in chunks]
    labels = [f"W{c.index + 1}<br><sub>tok {c.token_start}–{c.token_end}</sub>" for c in chunks]
    colors = [ACCENT if c.index == deciding else "#c7d2fe" for c in chunks]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=values,
            marker={"color": colors, "line": {"color": ACCENT, "width": [2 if c.index == deciding else 0 for c in chunks]}},
            text=[format_score(v) for v in values],
            textposition="outside",
            cliponaxis=False,
            customdata=[[c.token_start, c.token_end, c.start, c.end] for c in chunks],
            hovertemplate="window %{x}<br>score %{y:.3f}<br>chars %{customdata[2]}–%{customdata[3]}<extra></extra>",
        )
    )
    if truncated_at is not None:
        position = _cut_position(chunks, truncated_at)
        fig.add_vline(x=position, line={"color": "#dc2626", "dash": "dash", "width": 2})
        fig.add_annotation(
            x=position, y=1.0, yref="paper", yanchor="bottom", text="✂ a truncating model stops here", showarrow=False,
            xanchor="left", font={"color": "#dc2626", "size": 12}, bgcolor="rgba(255,255,255,0.85)",
        )
    unit = "sigmoid(logit), 0–1" if normalized else "cross-encoder logit"
    fig.update_yaxes(title={"text": unit})
    if normalized:
        fig.update_yaxes(range=[0, 1.1])
    fig.update_layout(showlegend=False, bargap=0.25)
    _layout(fig, title, 360)
    fig.update_layout(margin={"t": 80})
    return fig


def _cut_position(chunks: Sequence[ChunkScore], char: int) -> float:
    """Where a character offset falls on the categorical axis (bar i spans i − 0.5 … i + 0.5)."""
    for i, c in enumerate(chunks):
        if char < c.end:
            return i - 0.5 + (char - c.start) / max(c.end - c.start, 1)
    return len(chunks) - 0.5


def _ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10:
        return f"{value:.0f} ms"
    return f"{value:.1f} ms"
