"""The Evaluate tab's evidence panels, as plain functions of a report: how sure (bootstrap intervals, the minimum
detectable effect, bounds for unjudged documents), where reranking fails (slices), what to judge next, and
score thresholds for RAG (a reliability diagram and the threshold for a target precision).

`evidence_view` computes everything from an `EvaluationReport` (no new query runs); the tab only wires it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from reranker.corpus import Corpus
from reranker.evaluation.analysis import ConfigurationResult, EvaluationReport
from reranker.evaluation.calibration import Calibration, calibrate, scored_pairs
from reranker.evaluation.evidence import ReportEvidence, report_evidence
from reranker.evaluation.judge_next import JudgeNextItem, judge_next_queue
from reranker.evaluation.slices import Slice, reranking_slices
from reranker.ui.figures import PALETTE, empty_figure
from reranker.ui.render import esc, shorten

QUEUE_LENGTH = 10
FIRST_METRIC = "ndcg@10"
MIN_SLICE_QUERIES = 5  # fewer queries: the interval says little, so the slice is not coloured as a finding


@dataclass(frozen=True)
class EvidenceView:
    sure: str
    slices: str
    queue: str
    reliability: go.Figure
    thresholds: str


def _interval(pair: tuple[float, float], signed: bool = False) -> str:
    fmt = "+.3f" if signed else ".3f"
    return f"{pair[0]:{fmt}} to {pair[1]:{fmt}}"


def how_sure_html(report: EvaluationReport, evidence: ReportEvidence, metric: str = FIRST_METRIC) -> str:
    """Per configuration against the baseline: the difference in `metric` with its 95% interval, p, the minimum
    detectable effect at this many queries and the queries a given difference would need; then the bounds
    unjudged documents allow, where judged@10 < 1."""
    rows = []
    for result in report.configurations:
        paired = evidence.for_significance(result.name, metric)
        sig = report.significance_for(result.name, metric)
        if paired is None or sig is None:
            continue
        crosses = paired.delta_ci95[0] <= 0 <= paired.delta_ci95[1]
        verdict = "could be no difference" if crosses else ("better" if paired.delta > 0 else "worse")
        mde = "—" if paired.mde is None else f"{paired.mde:.3f}"
        needed = paired.queries_for_effect
        observed = paired.queries_for_observed
        rows.append(
            f"<tr><td>{esc(result.name)}</td><td><b>{paired.delta:+.3f}</b></td>"
            f"<td>{_interval(paired.delta_ci95, True)} <span class='rl-eval-model'>({verdict})</span></td>"
            f"<td>{sig.p_value:.3f}</td><td>{mde}</td>"
            f"<td>{needed if needed else '—'}</td><td>{observed if observed else '—'}</td></tr>"
        )
    table = ""
    if rows:
        table = (
            f"<table class='rl-eval'><tr><th>against {esc(report.baseline)}</th><th>Δ {esc(metric)}</th>"
            "<th>95% interval of Δ</th><th>p</th><th>smallest Δ detectable</th>"
            f"<th>queries for Δ = {evidence.effect:g}</th><th>queries for the observed Δ</th></tr>{''.join(rows)}</table>"
        )
    bounds = ""
    if evidence.bounds:
        items = "".join(
            f"<li><b>{esc(name)}</b> (judged@10 {evidence.judged.get(name, 0.0):.2f}): {esc(metric)} between "
            f"<b>{_interval(b[metric])}</b></li>"
            for name, b in evidence.bounds.items()
            if metric in b
        )
        bounds = (
            f"<p class='rl-help'>Some top-10 documents have no judgment. With all of them not relevant, or all relevant "
            f"at grade {evidence.top_grade}, the figures would lie in:</p><ul class='rl-eval-bounds'>{items}</ul>"
        )
    help_text = (
        f"Scales: metrics run from 0 to 1; Δ is a difference of means on that scale. Intervals are 95% paired bootstrap "
        f"intervals over the {evidence.queries} queries ({evidence.resamples} resamples): an interval that spans 0 means "
        "this query set cannot tell the two apart. Smallest Δ detectable: the difference a paired t-test (α 0.05) "
        "would find 80% of the time with this many queries; the query counts say how many judged queries a difference "
        "would need for that, given how much the per-query differences vary here."
    )
    return (
        f"<div id='rl-eval-sure'><h4>How sure: {esc(metric)} against {esc(report.baseline)}</h4>{table}{bounds}"
        f"<p class='rl-help'>{help_text}</p></div>"
    )


def slices_html(slices: Sequence[Slice], name: str, before: str = "fused", metric: str = FIRST_METRIC) -> str:
    """The slices of one reranking configuration: queries, helped/hurt, mean change with its interval and a bar."""
    if not slices:
        return ""
    span = max(max(abs(s.ci95[0]), abs(s.ci95[1])) for s in slices) or 1.0
    rows = []
    feature = None
    for s in slices:
        span_rows = sum(1 for x in slices if x.feature == s.feature)
        head = f"<td rowspan='{span_rows}'>{esc(s.feature)}</td>" if s.feature != feature else ""
        feature = s.feature
        width = abs(s.mean_delta) / span * 50
        left = 50 if s.mean_delta >= 0 else 50 - width
        settled = s.queries >= MIN_SLICE_QUERIES
        css = "rl-sig-up" if settled and s.ci95[0] > 0 else "rl-sig-down" if settled and s.ci95[1] < 0 else "rl-sig-none"
        interval = _interval(s.ci95, True) if s.queries > 1 else "— (one query)"
        bar = (
            f"<div class='rl-slice-bar'><span class='rl-slice-axis'></span>"
            f"<span class='rl-slice-fill {'rl-slice-up' if s.mean_delta >= 0 else 'rl-slice-down'}' "
            f"style='left:{left:.1f}%;width:{width:.1f}%'></span></div>"
        )
        rows.append(
            f"<tr>{head}<td>{esc(s.label)}</td><td>{s.queries}</td><td>{s.helped} / {s.hurt}</td>"
            f"<td class='{css}'>{s.mean_delta:+.3f}</td><td>{interval}</td><td>{bar}</td></tr>"
        )
    return (
        f"<div id='rl-eval-slices'><h4>Where {esc(name)} helps and hurts: change in {esc(metric)} from {esc(before)}, "
        f"by slice of the queries</h4><table class='rl-eval'><tr><th>slice</th><th>bin</th><th>queries</th>"
        f"<th>helped / hurt</th><th>mean Δ</th><th>95% interval</th><th>mean Δ (bar, ±{span:.2f})</th></tr>"
        f"{''.join(rows)}</table><p class='rl-help'>Δ = {esc(name)}'s {esc(metric)} minus {esc(before)}'s for the same "
        f"query (−1 to +1). Green/red: a slice of at least {MIN_SLICE_QUERIES} queries whose interval lies wholly above/below 0. "
        "Truncation: whether a relevant document "
        "is longer than the model reads at once and whether the window that decided its score lies past that cut. "
        "Lexical overlap: share of the query's words found in its relevant documents. A slice of few queries has a wide "
        "interval: read it as a lead, not a verdict.</p></div>"
    )


def judge_next_html(
    queue: Sequence[JudgeNextItem], a: str, b: str, queries: Mapping[str, str], titles: Mapping[str, str]
) -> str:
    """The documents to grade next for A vs B; a click opens the query in Search (with B's settings) to grade there."""
    if not queue:
        return (
            f"<div id='rl-eval-queue'><h4>Judge next: {esc(a)} vs {esc(b)}</h4><p class='rl-help'>Every document in both "
            "top 10s is judged: this comparison does not rest on unjudged documents.</p></div>"
        )
    rows = "".join(
        f"<tr class='rl-eval-row' data-qid='{esc(item.query_id)}' data-config='{esc(b)}' title='Open in Search to grade it'>"
        f"<td>{esc(shorten(queries.get(item.query_id, item.query_id), 70))}"
        f"<div class='rl-eval-model'>{esc(item.query_id)}</div></td>"
        f"<td>{esc(shorten(titles.get(item.doc_id) or item.doc_id, 50))}<div class='rl-eval-model'>{esc(item.doc_id)}</div></td>"
        f"<td>#{item.rank_a or '–'} / #{item.rank_b or '–'}</td>"
        f"<td class='{'rl-sig-up' if item.swing > 0 else 'rl-sig-down'}'>{item.swing:+.4f}</td></tr>"
        for item in queue
    )
    return (
        f"<div id='rl-eval-queue'><h4>Judge next: the unjudged documents that would move {esc(b)} vs {esc(a)} most</h4>"
        f"<table class='rl-eval'><tr><th>query</th><th>document</th><th>rank in {esc(a)} / {esc(b)}</th>"
        f"<th>swing of mean Δ nDCG@10</th></tr>{rows}</table><p class='rl-help'>Swing: how much the mean nDCG@10 "
        f"difference ({esc(b)} − {esc(a)}) would change if the document were graded relevant at the top grade instead "
        f"of counting as not relevant; + favours {esc(b)}. Click a row to open the query in Search and grade the "
        "document there.</p></div>"
    )


def reliability_figure(calibrations: Mapping[str, Calibration]) -> go.Figure:
    """Per model: fraction relevant (and mean grade on hover) per sigmoid-score bin, with the diagonal a calibrated
    model would follow and each model's threshold as a dotted line."""
    if not calibrations:
        return empty_figure("Add a configuration with a cross-encoder to see how its scores relate to relevance.")
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"color": "#d0d7de", "dash": "dot"}, hoverinfo="skip", name="calibrated"
        )
    )
    for i, (name, c) in enumerate(calibrations.items()):
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=[b.mean_score for b in c.bins],
                y=[b.fraction_relevant for b in c.bins],
                mode="lines+markers",
                name=shorten(name, 40),
                line={"color": color},
                marker={"size": [min(22, 6 + b.pairs ** 0.5) for b in c.bins], "color": color},
                hovertext=[
                    f"{esc(name)}<br>scores {b.lo:.1f}–{b.hi:.1f}: {b.pairs} documents<br>"
                    f"{b.fraction_relevant:.0%} relevant, mean grade {b.mean_grade:.2f}"
                    for b in c.bins
                ],
                hoverinfo="text",
            )
        )
        if c.threshold is not None:
            fig.add_vline(x=c.threshold, line={"color": color, "dash": "dash", "width": 1})
    fig.update_layout(
        title="Reliability: share relevant per score bin<br><sup>dotted: a calibrated model · dashed: each model's threshold "
        "for the target precision · marker size: documents in the bin</sup>",
        xaxis={"title": "cross-encoder score (sigmoid, 0–1), bin mean", "range": [0, 1]},
        yaxis={"title": "fraction of documents relevant (grade ≥ 1)", "range": [0, 1.02]},
        height=380,
        margin={"l": 50, "r": 20, "t": 70, "b": 40},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def thresholds_html(calibrations: Mapping[str, Calibration]) -> str:
    if not calibrations:
        return ""
    rows = []
    for name, c in calibrations.items():
        if c.threshold is None:
            cells = f"<td colspan='3'>none: {esc(c.reason)}</td>"
        else:
            cells = f"<td><b>≥ {c.threshold:.3f}</b></td><td>{c.precision:.2f}</td><td>{c.recall:.2f}</td>"
        rows.append(f"<tr><td>{esc(name)}</td>{cells}<td>{c.pairs} ({c.relevant} relevant, {c.unjudged} unjudged)</td></tr>")
    target = next(iter(calibrations.values())).target_precision
    return (
        f"<div id='rl-eval-thresholds'><h4>Score threshold for precision {target:g}</h4><table class='rl-eval'>"
        f"<tr><th>model</th><th>keep if sigmoid score</th><th>precision</th><th>recall</th><th>scored documents</th></tr>"
        f"{''.join(rows)}</table><p class='rl-help'>Pass the documents scoring at or above the threshold to an LLM: on "
        "this split, that share of them is relevant (precision) and that share of the relevant documents the model "
        "scored is kept (recall). Unjudged documents count as not relevant. A model on the diagonal of the diagram is "
        "calibrated: a score of 0.8 means 80% of such documents are relevant.</p></div>"
    )


def report_calibrations(report: EvaluationReport, target_precision: float) -> dict[str, Calibration]:
    """Per reranking configuration of the report: its calibration on the report's queries (no new runs)."""
    return {
        r.name: calibrate(scored_pairs(r.results, report.qrels), target_precision=target_precision)
        for r in _rerankers(report)
    }


def _rerankers(report: EvaluationReport) -> list[ConfigurationResult]:
    return [r for r in report.configurations if r.ok and r.config.reranks]


def evidence_view(
    report: EvaluationReport,
    corpus: Corpus,
    query_types: Mapping[str, str] | None = None,
    *,
    focus: str | None = None,
    target_precision: float = 0.8,
) -> EvidenceView:
    """Every evidence panel for a report: the focused (else first) reranking configuration gets the slices, and the
    queue compares it with the baseline (or the first two configurations when none reranks)."""
    evidence = report_evidence(report)
    rerankers = _rerankers(report)
    chosen = next((r for r in rerankers if r.name == focus), rerankers[0] if rerankers else None)
    first = next(iter(chosen.results.values()), None) if chosen is not None else None
    before = "fused" if first is None or first.before.stage == "fused" else first.before.stage
    slices = slices_html(reranking_slices(report, chosen.name, corpus, query_types), chosen.name, before) if chosen else ""
    usable = [r for r in report.configurations if r.ok]
    base = next((r for r in usable if r.name == report.baseline), None)
    other = chosen if chosen is not None and chosen is not base else next((r for r in usable if r is not base), None)
    queue = ""
    if base is not None and other is not None:
        items = judge_next_queue(report.qrels, base.run, other.run, n=QUEUE_LENGTH)
        titles = {i.doc_id: corpus[i.doc_id].title for i in items if i.doc_id in corpus}
        queue = judge_next_html(items, base.name, other.name, report.queries, titles)
    calibrations = report_calibrations(report, target_precision)
    return EvidenceView(
        how_sure_html(report, evidence), slices, queue, reliability_figure(calibrations), thresholds_html(calibrations)
    )
