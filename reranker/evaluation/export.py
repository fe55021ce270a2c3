"""Exports: any stage's run (TREC files are written by `reranker.runs`), evaluation results as JSON and CSV, and a
self-contained HTML snapshot of one query's fused-vs-reranked comparison.

The snapshot inlines its CSS and plotly.js (from the pip package, no CDN), so it opens offline
in any browser; every piece of corpus or query text is HTML-escaped. Given a score explanation
(`reranker.explain`), it also shows the explained window with each sentence's logit change as heat.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from reranker.cache import atomic_write_text
from reranker.corpus import Corpus
from reranker.distribution import bundled
from reranker.errors import ConfigError
from reranker.evaluation.analysis import EvaluationReport, hurt_documents, ranking_changes
from reranker.evaluation.compare import movement, rank_biased_overlap, top_k_overlap
from reranker.evaluation.evidence import ReportEvidence, report_evidence
from reranker.evaluation.metrics import Run
from reranker.evaluation.uncertainty import ALPHA, POWER
from reranker.explain import Explanation
from reranker.html_text import esc, heat_style
from reranker.ranked_html import Column, ranked_table
from reranker.runs import safe_tag, write_run
from reranker.types import Hit, PipelineResult, RankedList

# ---------------------------------------------------------------- runs


def result_run(result: PipelineResult, stage: str, query_id: str = "q1") -> Run:
    """One query's stage as a run (for exporting a single search)."""
    if stage not in result.stages:
        raise ConfigError(f"stage {stage!r} did not run for this query (ran: {', '.join(result.stages)})")
    return {query_id: result.stages[stage].as_run()}


# ---------------------------------------------------------------- JSON and CSV


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def _pair(interval: tuple[float, float]) -> list[float | None]:
    return [_round(interval[0]), _round(interval[1])]


def report_to_json(report: EvaluationReport, evidence: ReportEvidence | None = None) -> dict:
    """The evaluation as plain data: per configuration metrics with bootstrap 95% intervals (`ci95`), bounds for
    unjudged documents where judged@10 < 1 (`bounds`), latency, significance (with the difference's interval
    `delta_ci95`, the minimum detectable effect `mde` and the queries an effect needs), errors."""
    evidence = evidence or report_evidence(report)
    configurations = {}
    for result in report.configurations:
        significance = {}
        for s in report.significance:
            if s.name != result.name:
                continue
            entry = {
                "p_value": _round(s.p_value, 6),
                "significant": s.significant,
                "delta": _round(s.delta),
                "wins": s.wins,
                "ties": s.ties,
                "losses": s.losses,
            }
            paired = evidence.for_significance(s.name, s.metric)
            if paired is not None:
                entry.update(
                    {
                        "delta_ci95": _pair(paired.delta_ci95),
                        "mde": _round(paired.mde),
                        "sd_delta": _round(paired.sd),
                        "queries_needed": paired.queries_for_effect,
                        "queries_needed_observed": paired.queries_for_observed,
                    }
                )
            significance[s.metric] = entry
        entry_out = {
            "spec": result.config.spec,
            "stage": result.config.stage,
            "cross_encoder": result.model,
            "metrics": {m: _round(v) for m, v in result.means.items()},
            "ci95": {m: _pair(v) for m, v in evidence.ci95.get(result.name, {}).items()} or None,
            "latency_ms": {s: _round(v, 2) for s, v in result.latency_ms.items()},
            "significance": significance or None,
            "error": result.error,
        }
        if result.name in evidence.bounds:
            entry_out["bounds"] = {m: _pair(v) for m, v in evidence.bounds[result.name].items()}
        configurations[result.name] = entry_out
    return {
        "dataset": report.dataset,
        "split": report.split,
        "queries": len(report.queries),
        "metrics": list(report.metrics),
        "baseline": report.baseline,
        "stat_test": report.stat_test,
        "max_p": report.max_p,
        "uncertainty": {
            "ci95": f"paired percentile bootstrap over queries, {evidence.resamples} resamples, seed {evidence.seed}",
            "mde": f"two-sided paired t-test, alpha {ALPHA:g}, power {POWER:g}, observed sd of per-query differences",
            "effect": evidence.effect,
            "bounds": f"unjudged documents in a metric's top k counted as grade 0 (min) or {evidence.top_grade} (max)",
        },
        "configurations": configurations,
        "problems": list(report.problems),
    }


def per_query_rows(report: EvaluationReport) -> list[dict[str, object]]:
    """One row per (query, configuration): metrics, difference from the baseline, hurt documents,
    and for reranking configurations the RBO between the fused and reranked lists."""
    baseline = next((r for r in report.configurations if r.name == report.baseline and r.ok), None)
    metric = report.metrics[0]
    rows: list[dict[str, object]] = []
    changes = {
        r.name: {c.query_id: c for c in ranking_changes(r.results, report.queries)}
        for r in report.configurations
        if r.ok and r.config.reranks
    }
    for qid in report.judged:
        for result in report.configurations:
            row: dict[str, object] = {"query_id": qid, "query": report.queries[qid], "configuration": result.name}
            if not result.ok:
                row.update({m: "" for m in report.metrics})
                row.update({f"delta_{metric}": "", "rbo_fused_vs_reranked": "", "hurt_documents": "", "error": result.error})
                rows.append(row)
                continue
            values = result.per_query.get(qid, {})
            row.update({m: _round(values.get(m, 0.0)) for m in report.metrics})
            base = baseline.per_query.get(qid, {}).get(metric) if baseline else None
            row[f"delta_{metric}"] = _round(values.get(metric, 0.0) - base) if base is not None else ""
            change = changes.get(result.name, {}).get(qid)
            row["rbo_fused_vs_reranked"] = _round(change.rbo) if change else ""
            pipeline_result = result.results.get(qid)
            hurt = hurt_documents(pipeline_result, report.qrels.get(qid, {})) if pipeline_result else ()
            row["hurt_documents"] = " ".join(f"{h.doc_id}({h.before}->{h.after or '-'})" for h in hurt)
            row["error"] = ""
            rows.append(row)
    return rows


def per_query_csv(report: EvaluationReport) -> str:
    rows = per_query_rows(report)
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def metrics_csv(report: EvaluationReport) -> str:
    """One row per configuration: means, p-value against the baseline per metric, latency."""
    out = io.StringIO()
    fields = ["configuration", "stage", "cross_encoder", *report.metrics]
    fields += [f"p_{m}" for m in report.metrics] + ["ms_per_query", "error"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for result in report.configurations:
        row: dict[str, object] = {"configuration": result.name, "stage": result.config.stage, "cross_encoder": result.model or ""}
        for m in report.metrics:
            row[m] = _round(result.means.get(m)) if result.ok else ""
            sig = report.significance_for(result.name, m)
            row[f"p_{m}"] = _round(sig.p_value, 6) if sig else ""
        row["ms_per_query"] = _round(result.latency_ms.get("total"), 2) if result.ok else ""
        row["error"] = result.error or ""
        writer.writerow(row)
    return out.getvalue()


def write_text(path: str | Path, text: str) -> Path:
    """Write an export whole or not at all (reranker.cache.atomic_write_text)."""
    return atomic_write_text(path, text)


def write_json(path: str | Path, data: object) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- HTML snapshot

LIST_STYLES_START = "/* Two lists side by side (HTML snapshots inline this section too: reranker/evaluation/export.py) */"
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
.meta{color:#57606a;font-size:13px;margin-bottom:16px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #d0d7de;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.bar{display:inline-block;height:8px;background:#0969da;border-radius:2px;vertical-align:middle}
.chunks{font-size:11px;color:#57606a}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:6px;font-size:13px;margin:4px 0}
.explained{white-space:pre-wrap;font-size:13px;line-height:1.6;border:1px solid #d0d7de;border-radius:8px;padding:10px 12px}
.heat{border-radius:3px} .swatch{display:inline-block;width:22px;height:10px;border:1px solid #d0d7de;border-radius:2px;
vertical-align:middle;margin:0 3px 0 8px}
"""


def _window_scores(hit: Hit) -> str:
    """Each token window's score as a bar (* marks the deciding one): the snapshot's detail under a document."""
    cell = ""
    if hit.chunks:
        top = max(c.raw for c in hit.chunks)
        bottom = min(c.raw for c in hit.chunks)
        span = (top - bottom) or 1.0
        bars = "".join(
            f'<div>#{c.index}{"*" if c.index == hit.deciding_chunk else ""} '
            f'<span class="bar" style="width:{int(8 + 60 * (c.raw - bottom) / span)}px"></span> {c.raw:.3f}</div>'
            for c in hit.chunks
        )
        cell = f'<div class="chunks">{len(hit.chunks)} window(s), * decided:{bars}</div>'
    if hit.truncated_at is not None:
        cell += '<div class="chunks">longer than one model input: scored in windows</div>'
    return cell


def list_styles() -> str:
    """The page's styles for ranked lists (assets/app.css, from LIST_STYLES_START to the next section), so a
    snapshot's lists look like the page's."""
    sheet = (bundled("assets") / "app.css").read_text(encoding="utf-8")
    if LIST_STYLES_START not in sheet:
        raise RuntimeError(f"assets/app.css lost its {LIST_STYLES_START!r} section, which snapshots inline")
    return LIST_STYLES_START + sheet.split(LIST_STYLES_START, 1)[1].split("\n/* ", 1)[0]


def _movement_figure(before: RankedList, after: RankedList, corpus: Corpus, top_n: int) -> str:
    """A slope chart (rank before reranking -> rank after) as an HTML div with plotly.js inlined."""
    import plotly.graph_objects as go

    fig = go.Figure()
    shown = list(dict.fromkeys(after.doc_ids()[:top_n] + before.doc_ids()[:top_n]))
    limit = top_n + 1
    for doc_id in shown:
        b, a = before.rank_of(doc_id), after.rank_of(doc_id)
        b_y = b if b is not None and b <= top_n else limit
        a_y = a if a is not None and a <= top_n else limit
        move = movement(doc_id, before, after, top_n)
        color = {"up": "#1a7f37", "down": "#cf222e", "new": "#0969da", "dropped": "#9a6700"}.get(move.kind, "#8c959f")
        doc = corpus.get(doc_id)
        label = (doc.title if doc and doc.title else doc_id)[:60]
        fig.add_trace(
            go.Scatter(
                x=[before.stage, after.stage],
                y=[b_y, a_y],
                mode="lines+markers",
                line={"color": color, "width": 2},
                name=label,
                hovertext=[f"{label}<br>{before.stage} rank {b or '–'}", f"{label}<br>{after.stage} rank {a or '–'}"],
                hoverinfo="text",
                showlegend=False,
            )
        )
    fig.update_yaxes(autorange="reversed", title="rank (bottom row = outside top-n)", dtick=1)
    fig.update_layout(height=360, margin={"l": 40, "r": 20, "t": 20, "b": 30}, template="plotly_white")
    return fig.to_html(full_html=False, include_plotlyjs=True, config={"displaylogo": False})


def _explanation_section(explanation: Explanation, corpus: Corpus, doc_id: str) -> str:
    """The explained window as text with heat per span, and a legend that writes the unit out."""
    doc = corpus.get(doc_id)
    title = (doc.title if doc else "") or doc_id
    pieces = []
    for start, end, span in explanation.segments():
        piece = esc(explanation.text[start:end])
        if span is None:
            pieces.append(piece)
        else:
            pieces.append(
                f'<span class="heat" style="{heat_style(explanation.share(span))}" '
                f'title="{span.delta:+.3f} {esc(explanation.unit)}">{piece}</span>'
            )
    window = explanation.window
    low = min((s.delta for s in explanation.spans), default=0.0)
    high = max((s.delta for s in explanation.spans), default=0.0)
    return (
        f'<section id="explanation"><h2>Why {esc(title)} ({esc(doc_id)}) scored as it did</h2>'
        f'<div class="meta">Window {window.index + 1} of {explanation.windows} (characters {window.start}–{window.end}), '
        f"logit {explanation.score:+.3f}. Heat per "
        f"{'sentence' if explanation.granularity == 'sentence' else 'token span'}: {esc(explanation.unit_help)}.<br>"
        f'<span class="swatch" style="{heat_style(-1.0)}"></span>lowered ({low:+.3f})'
        f'<span class="swatch" style="{heat_style(1.0)}"></span>raised ({high:+.3f} {esc(explanation.unit)}) · '
        f"{esc(explanation.how)}; {esc(explanation.model)}, {esc(explanation.precision)}</div>"
        f'<div class="explained">{"".join(pieces)}</div></section>'
    )


def html_snapshot(
    result: PipelineResult,
    corpus: Corpus,
    *,
    judgments: Mapping[str, int] | None = None,
    title: str = "Rerank Lens snapshot",
    include_figure: bool = True,
    settings: Mapping[str, object] | None = None,
    explanation: tuple[str, Explanation] | None = None,
    before_heading: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    """A single self-contained HTML page comparing the list before reranking (fused, or the first-stage list
    reranking started from, e.g. a TREC run's: name it in `before_heading`) and the final list of one query;
    with `explanation` (a doc id and its `Explanation`), why that document scored as it did."""
    judgments = judgments or {}
    top_n = result.top_n
    before, after = result.before, result.after
    first, final = before.stage, result.final_stage
    fused_table = ranked_table(
        Column(before_heading or "Before: fused (BM25 + dense, RRF)", before, after, "before"),
        corpus, top_n, judgments=judgments, details=_window_scores,
    )  # fmt: skip
    final_table = ranked_table(Column(f"After: {final}", after, before, "after"), corpus, top_n, judgments=judgments,
                               details=_window_scores)
    latency = "".join(
        f"<tr><td>{esc(t.stage)}</td><td>{t.ms:.1f}</td><td>{t.load_ms:.0f}</td><td>{esc(t.detail)}</td></tr>"
        for t in result.timings
    )
    overlap = top_k_overlap(before.doc_ids(), after.doc_ids(), top_n)
    rbo = rank_biased_overlap(before.doc_ids()[: len(after)], after.doc_ids())
    hurt = hurt_documents(result, judgments, top_n) if judgments else ()
    notes_html = "".join(f'<div class="note">{esc(m)}</div>' for m in [*notes, *result.messages])
    if hurt:
        notes_html += "".join(
            f'<div class="note">Reranker hurt: relevant {esc(h.doc_id)} (grade {h.grade}) fell from {esc(first)} rank '
            f"{h.before} to {h.after or 'outside the list'}.</div>"
            for h in hurt
        )
    settings_line = " · ".join(f"{esc(k)}: {esc(v)}" for k, v in (settings or {}).items())
    figure = _movement_figure(before, after, corpus, top_n) if include_figure and result.reranked else ""
    explained = _explanation_section(explanation[1], corpus, explanation[0]) if explanation else ""
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}: {esc(result.query[:80])}</title>
<style>{_CSS}{list_styles()}</style></head>
<body>
<h1>Query: <span id="query">{esc(result.query)}</span></h1>
<div class="meta">{esc(corpus.name)} · {len(corpus)} documents · top {top_n} · final stage {esc(final)} ·
top-{top_n} overlap {overlap:.2f} · RBO {rbo:.3f} · created {created}{(' · ' + settings_line) if settings_line else ''}</div>
<div class="meta">Scores: {esc(first)} = {esc(before.score_label)}; {esc(final)} = {esc(after.score_label)}</div>
{notes_html}
<div class="rl-lists">
<section id="fused">{fused_table}</section>
<section id="final">{final_table}</section>
</div>
{explained}
{('<h2>Rank movement</h2>' + figure) if figure else ''}
<h2>Latency</h2>
<table id="latency"><tr><th>stage</th><th>ms</th><th>model load ms</th><th>detail</th></tr>{latency}</table>
<p class="meta">Made with Rerank Lens. This file is self-contained and works offline.</p>
</body></html>
"""


def write_snapshot(path: str | Path, result: PipelineResult, corpus: Corpus, **kwargs) -> Path:
    return write_text(path, html_snapshot(result, corpus, **kwargs))


def snapshot_filename(query: str, suffix: str = ".html") -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "-", query.lower()).strip("-")[:48] or "query"
    return f"rerank-lens-{stem}{suffix}"


def trec_runs_for_report(report: EvaluationReport, folder: str | Path, depth: int | None = None) -> dict[str, str]:
    """Write every configuration's run as `<folder>/<name>.trec`: name -> path."""
    written = {}
    for result in report.configurations:
        if result.ok:
            written[result.name] = str(write_run(Path(folder) / f"{safe_tag(result.name)}.trec", result.run, result.name, depth))
    return written

