"""The Evaluate tab: up to four configurations over a split's judged queries.

Shows a metrics table with paired significance against a baseline and mean latency, a per-query
nDCG@10 before/after plot (hover for the query, click to open it in Search), the queries reranking
helped and hurt most with "reranker hurt" flags, the most-changed rankings, model agreement, and
downloads (per-query CSV, JSON, TREC runs, an HTML snapshot of the current query). The `*_html`
and `*_figure` functions are plain and tested directly; `build_evaluate_tab` only wires widgets.
Its styles are in assets/app.css with the rest of the page's.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import plotly.graph_objects as go

from reranker.cache import BoundedLRU
from reranker.corpus import Qrels
from reranker.errors import ConfigError, RerankLensError
from reranker.evaluation.analysis import (
    MAX_CONFIGURATIONS,
    STAT_TESTS,
    Agreement,
    Configuration,
    EvaluationCancelled,
    EvaluationReport,
    QueryComparison,
    QueryDelta,
    RankingChange,
    compare_on_query,
    evaluate_configurations,
    helped_and_hurt,
    model_agreement,
    parse_configuration,
    parse_configurations,
    query_deltas,
    ranking_changes,
)
from reranker.evaluation.evidence import ReportEvidence, report_evidence
from reranker.evaluation.export import (
    html_snapshot,
    metrics_csv,
    per_query_csv,
    report_to_json,
    snapshot_filename,
    write_json,
    write_text,
)
from reranker.evaluation.slices import query_types_of
from reranker.explain import explain
from reranker.models import KNOWN_CROSS_ENCODERS, PROJECT_MODELS
from reranker.pipeline import resolve_cross_encoder_spec
from reranker.runs import RUN_STAGE, format_run
from reranker.ui.context import PRIVATE, AppContext, describe, tab
from reranker.ui.evaluate_evidence import EvidenceView, evidence_view
from reranker.ui.figures import empty_figure
from reranker.ui.judges_panel import build_agreement_section
from reranker.ui.render import esc, notice_html, shorten
from reranker.ui.search_tab import ProgressFn, run_search
from reranker.ui.settings import SETTING_FIELDS, Settings, named_settings, page_values, settings_from, user_errors
from reranker.ui.state import AppState, LoadedRun, judgments_for

logger = logging.getLogger(__name__)

DEFAULT_SPECS = ("fused", "auto", "", "")
CONFIGURATION_NAMES = tuple(f"configuration_{i + 1}" for i in range(MAX_CONFIGURATIONS))  # the slots, for API clients
DELTA_METRIC = "ndcg@10"
LIST_LENGTH = 10
# Clicking a row (or a point of the plot) writes "query id|nonce" into the hidden box, which opens Search.
PICK_ID = "rl-eval-pick"
PICK_JS = f"""
const pick = (qid, config) => {{
  const box = document.querySelector('#{PICK_ID} textarea, #{PICK_ID} input');
  if (!box) return;
  box.value = qid + '|' + (config || '') + '|' + Date.now();
  box.dispatchEvent(new Event('input', {{bubbles: true}}));
}};
element.addEventListener('click', e => {{
  const row = e.target.closest('[data-qid]');
  if (row) pick(row.dataset.qid, row.dataset.config);
}});
const hook = () => {{
  const plot = document.querySelector('#rl-eval-plot .js-plotly-plot');
  if (plot && plot.on && !plot.dataset.rlHooked) {{
    plot.dataset.rlHooked = '1';
    plot.on('plotly_click', ev => {{
      const point = ev.points && ev.points[0];
      if (point && point.customdata) pick(point.customdata[0], point.customdata[1]);
    }});
  }}
}};
new MutationObserver(hook).observe(document.body, {{childList: true, subtree: true}});
hook();
"""

def configuration_choices() -> list[str]:
    """Suggestions for the configuration pickers (any spec can be typed)."""
    models = [*PROJECT_MODELS, *(m for m, _ in KNOWN_CROSS_ENCODERS)]
    return ["bm25", "dense", "fused", RUN_STAGE, "auto", *(f"rerank:{m}" for m in models)]


@dataclass(frozen=True)
class EvaluateView:
    notes: str
    table: str
    figure: go.Figure
    lists: str
    changes: str
    agreement: str
    files: list[str]
    report: EvaluationReport | None = None


# ---------------------------------------------------------------- pure rendering


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def metrics_table_html(report: EvaluationReport, evidence: ReportEvidence | None = None) -> str:
    """Mean per metric per configuration with its bootstrap 95% interval (and, where judged@10 < 1, the bounds
    unjudged documents allow); Δ and p against the baseline (▲/▼ when significant), latency."""
    evidence = evidence or report_evidence(report)
    test = {"student": "paired t-test", "fisher": "randomization test", "tukey": "Tukey HSD"}[report.stat_test]
    head = "".join(f"<th>{esc(m)}</th>" for m in report.metrics)
    rows = []
    for result in report.configurations:
        name = esc(result.name) + (" <small>(baseline)</small>" if result.name == report.baseline else "")
        model = f"<div class='rl-eval-model'>{esc(result.model)}</div>" if result.model else ""
        if not result.ok:
            rows.append(
                f"<tr class='rl-eval-error'><td>{name}{model}</td><td colspan='{len(report.metrics) + 1}'>"
                f"could not run: {esc(result.error)}</td></tr>"
            )
            continue
        cells = []
        for metric in report.metrics:
            value = f"{result.means[metric]:.4f}"
            sig = report.significance_for(result.name, metric)
            extra = ""
            if sig is not None:
                arrow = ("▲" if sig.delta > 0 else "▼") if sig.significant else ""
                css = ("rl-sig-up" if sig.delta > 0 else "rl-sig-down") if sig.significant else "rl-sig-none"
                extra = (
                    f" <span class='{css}' title='{esc(test)}: p = {sig.p_value:.4f}; wins/ties/losses "
                    f"{sig.wins}/{sig.ties}/{sig.losses}'>{arrow} {sig.delta:+.4f} (p {_p(sig.p_value)})</span>"
                )
            interval = evidence.ci95.get(result.name, {}).get(metric)
            if interval is not None:
                low, high = interval
                extra += f"<div class='rl-eval-model' title='95% bootstrap interval'>95% {low:.3f}–{high:.3f}</div>"
            bound = evidence.bounds.get(result.name, {}).get(metric)
            if bound is not None:
                extra += (
                    f"<div class='rl-eval-bound' title='with every unjudged top document not relevant … all relevant'>"
                    f"unjudged: {bound[0]:.3f}–{bound[1]:.3f}</div>"
                )
            cells.append(f"<td>{value}{extra}</td>")
        latency = result.latency_ms
        stages = ", ".join(f"{esc(s)} {v:.0f}" for s, v in latency.items() if s != "total")
        cells.append(f"<td title='{stages}'>{latency.get('total', 0.0):.0f} ms<div class='rl-eval-model'>{stages}</div></td>")
        rows.append(f"<tr data-config='{esc(result.name)}'><td>{name}{model}</td>{''.join(cells)}</tr>")
    caption = (
        f"{len(report.judged)} judged queries of {esc(report.dataset)} ({esc(report.split)}). "
        f"Δ and p against <b>{esc(report.baseline)}</b>, {esc(test)}; ▲/▼ = significant at p &lt; {report.max_p:g}. "
        "Latency is the mean per query of the stages each configuration needs (model loading excluded). "
        "judged@10 is the share of each top 10 that has a judgment at all: below 1.0 a figure rests partly on "
        "unjudged documents, which count as not relevant, and 'unjudged: a–b' gives the figure with all of them not "
        "relevant … all relevant. '95% a–b' is the paired bootstrap interval of the mean over the queries."
    )
    return (
        f"<div id='rl-eval-table'><table class='rl-eval'><tr><th>configuration</th>{head}<th>latency / query</th></tr>"
        f"{''.join(rows)}</table><p class='rl-help'>{caption}</p></div>"
    )


def per_query_figure(deltas: Sequence[QueryDelta], name: str, metric: str = DELTA_METRIC, before: str = "fused") -> go.Figure:
    """One point per query: the metric before reranking (the `before` list: fused, or an uploaded run) and
    after it; points above the diagonal gained."""
    fig = go.Figure()
    colors = ["#1a7f37" if d.delta > 0 else "#cf222e" if d.delta < 0 else "#8c959f" for d in deltas]
    symbols = ["x" if d.hurt else "circle" for d in deltas]
    hover = [
        f"{esc(d.query_id)}: {esc(shorten(d.query, 90))}<br>{esc(before)} {d.before:.3f} → {d.after:.3f} ({d.delta:+.3f})"
        + (f"<br>⚠ {len(d.hurt)} relevant document(s) pushed out of the top-n" if d.hurt else "")
        + "<br>click to open in Search"
        for d in deltas
    ]
    fig.add_trace(
        go.Scatter(
            x=[d.before for d in deltas],
            y=[d.after for d in deltas],
            mode="markers",
            marker={"color": colors, "symbol": symbols, "size": 10, "line": {"width": 1, "color": "#ffffff"}},
            customdata=[[d.query_id, name] for d in deltas],
            hovertext=hover,
            hoverinfo="text",
            showlegend=False,
        )
    )
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"color": "#d0d7de", "dash": "dot"}, hoverinfo="skip",
                             showlegend=False))
    fig.update_layout(
        title=f"{metric} per query: {before} (x) vs {name} (y) — above the line reranking helped, × = reranker hurt",
        xaxis={"title": f"{metric} {before}", "range": [-0.03, 1.03]},
        yaxis={"title": f"{metric} {name}", "range": [-0.03, 1.03]},
        height=440,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        template="plotly_white",
    )
    return fig


def delta_lists_html(deltas: Sequence[QueryDelta], name: str, n: int = LIST_LENGTH, before: str = "fused") -> str:
    """The queries reranking helped and hurt most; hurt flags list the relevant documents pushed out."""
    helped, hurt = helped_and_hurt(deltas, n)
    flagged = sum(1 for d in deltas if d.hurt)

    def table(rows: Sequence[QueryDelta], title: str, element_id: str) -> str:
        if not rows:
            return f"<div id='{element_id}'><h4>{esc(title)}</h4><p class='rl-help'>None.</p></div>"
        body = "".join(
            f"<tr class='rl-eval-row' data-qid='{esc(d.query_id)}' data-config='{esc(name)}' title='Open in Search'>"
            f"<td>{esc(shorten(d.query, 80))}<div class='rl-eval-model'>{esc(d.query_id)}</div>{_hurt_flags(d)}</td>"
            f"<td>{d.before:.3f} → {d.after:.3f}</td><td class='{'rl-sig-up' if d.delta > 0 else 'rl-sig-down'}'>"
            f"{d.delta:+.3f}</td></tr>"
            for d in rows
        )
        return (
            f"<div id='{element_id}'><h4>{esc(title)}</h4><table class='rl-eval'>"
            f"<tr><th>query</th><th>{DELTA_METRIC}</th><th>Δ</th></tr>{body}</table></div>"
        )

    summary = (
        f"<p class='rl-help'>{esc(name)} vs {esc(before)}: {sum(d.delta > 0 for d in deltas)} helped, "
        f"{sum(d.delta < 0 for d in deltas)} hurt, {sum(d.delta == 0 for d in deltas)} unchanged; "
        f"<b>{flagged}</b> queries with a ⚠ reranker-hurt flag (a relevant document in the {esc(before)} top-n fell out "
        "of it). "
        "Click a query to open it in Search.</p>"
    )
    return (
        f"<div class='rl-eval-lists'>{summary}<div class='rl-eval-columns'>"
        f"{table(helped, 'Helped most', 'rl-eval-helped')}{table(hurt, 'Hurt most', 'rl-eval-hurt')}</div></div>"
    )


def _hurt_flags(delta: QueryDelta) -> str:
    if not delta.hurt:
        return ""
    items = ", ".join(
        f"{esc(h.doc_id)} (grade {h.grade}, #{h.before} → {('#' + str(h.after)) if h.after else 'gone'})" for h in delta.hurt
    )
    return f"<div class='rl-hurt-flag'>⚠ reranker hurt: {items}</div>"


def changes_html(changes: Sequence[RankingChange], name: str, n: int = LIST_LENGTH, before: str = "fused") -> str:
    """The queries whose ranking changed most between the list before reranking and after it (lowest RBO first)."""
    if not changes:
        return ""
    body = "".join(
        f"<tr class='rl-eval-row' data-qid='{esc(c.query_id)}' data-config='{esc(name)}' title='Open in Search'>"
        f"<td>{esc(shorten(c.query, 80))}</td><td>{c.rbo:.3f}</td><td>{c.kendall_tau:+.3f}</td><td>{c.overlap:.0%}</td></tr>"
        for c in changes[:n]
    )
    return (
        f"<div id='rl-eval-changes'><h4>Rankings {esc(name)} changed most</h4><table class='rl-eval'>"
        "<tr><th>query</th><th>RBO (p=0.9)</th><th>Kendall τ</th><th>top-10 overlap</th></tr>"
        f"{body}</table><p class='rl-help'>RBO and τ compare the {esc(before)} candidates with the reranked order: "
        "1 = unchanged, lower = reranking reordered more.</p></div>"
    )


def agreement_matrix_html(matrix: Agreement) -> str:
    """Kendall τ (upper) and top-k overlap (lower) between configurations, averaged over queries."""
    if len(matrix.names) < 2:
        return ""
    head = "".join(f"<th>{esc(n)}</th>" for n in matrix.names)
    rows = []
    for i, a in enumerate(matrix.names):
        cells = []
        for j, _ in enumerate(matrix.names):
            if i == j:
                cells.append("<td>—</td>")
            elif j > i:
                cells.append(f"<td title='Kendall τ'>τ {matrix.kendall_tau[i][j]:+.2f}</td>")
            else:
                cells.append(f"<td title='top-{matrix.k} overlap'>{matrix.overlap[i][j]:.0%}</td>")
        rows.append(f"<tr><th>{esc(a)}</th>{''.join(cells)}</tr>")
    return (
        f"<div id='rl-eval-agreement'><h4>Agreement between configurations ({matrix.queries} queries)</h4>"
        f"<table class='rl-eval'><tr><th></th>{head}</tr>{''.join(rows)}</table>"
        f"<p class='rl-help'>Above the diagonal: Kendall τ over the documents both lists hold (1 = same order). "
        f"Below: share of the top-{matrix.k} in common.</p></div>"
    )


def query_comparison_html(
    comparison: QueryComparison, titles: dict[str, str], top: int = 5, notes: Sequence[str] = ()
) -> str:
    """The configurations' top documents side by side, each one's latency, and their agreement, under `notes`."""
    names = list(comparison.lists)
    head = "".join(f"<th>{esc(n)}<div class='rl-eval-model'>{comparison.latency_ms[n]:.0f} ms</div></th>" for n in names)
    rows = []
    for rank in range(top):
        cells = []
        for name in names:
            hits = comparison.lists[name].hits
            if rank < len(hits):
                doc_id = hits[rank].doc_id
                title = esc(shorten(titles.get(doc_id) or doc_id, 60))
                cells.append(f"<td>{title}<div class='rl-eval-model'>{esc(doc_id)}</div></td>")
            else:
                cells.append("<td></td>")
        rows.append(f"<tr><th>#{rank + 1}</th>{''.join(cells)}</tr>")
    notices = "".join(notice_html(n) for n in notes)
    notices += "".join(notice_html(f"{n} could not run: {e}", "warn") for n, e in comparison.errors.items())
    table = f"<table class='rl-eval'><tr><th></th>{head}</tr>{''.join(rows)}</table>" if names else ""
    matrix = agreement_matrix_html(comparison.agreement) if comparison.agreement else ""
    return (
        f"<div id='rl-eval-query-compare'><h4>On the current query: {esc(shorten(comparison.query, 100))}</h4>"
        f"{notices}{table}{matrix.replace('queries)', 'query)') if matrix else ''}</div>"
    )


def search_settings_for(spec: str) -> dict[str, Any]:
    """The Search settings that show what a reranking configuration did (its model and its @settings)."""
    config = parse_configurations([spec])[0]
    if not config.reranks:
        return {}
    return {"cross_encoder": config.cross_encoder, **page_values(dict(config.settings))}


# ---------------------------------------------------------------- running


@dataclass(frozen=True)
class EvaluationInputs:
    """The Evaluate tab's inputs: the corpus and split, up to four configurations, the baseline (None: fused, or
    the first), the paired test, how many queries (0 or None: all) and the settings panel's overrides."""

    corpus_key: str
    split: str
    specs: Sequence[str]
    baseline: str | None
    stat_test: str
    limit: int | None
    base_overrides: dict[str, Any]


def evaluate_view(
    state: AppState,
    inputs: EvaluationInputs,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    focus: str | None = None,
) -> EvaluateView:
    """Evaluate the configurations (from cache when nothing changed) and render every panel."""
    request = evaluation_request(state, inputs)
    stat_test = inputs.stat_test
    report = state.reports.get(request.key)
    cached = report is not None
    if report is None:
        report = evaluate_configurations(
            request.pipeline,
            request.queries,
            {q: request.qrels[q] for q in request.queries},
            request.configs,
            baseline=request.baseline,
            stat_test=stat_test,  # type: ignore[arg-type]
            dataset=request.label,
            split=request.split,
            problems=request.problems,
            progress=progress,
            should_stop=should_stop,
            run=request.run,
        )
        state.reports.put(request.key, report)
    return render_report(report, cached=cached, focus=focus, notes=request.notes, folder=state.scratch.new_folder("evaluation"))


@dataclass(frozen=True)
class EvaluationRequest:
    """What an evaluation of the tab's inputs runs, and its key in the report cache."""

    key: tuple
    pipeline: Any
    queries: dict[str, str]
    qrels: Qrels
    configs: list[Configuration]
    baseline: str
    label: str
    split: str
    problems: tuple[str, ...]
    run: Any
    notes: list[str]
    dataset_path: str


def evaluation_request(state: AppState, inputs: EvaluationInputs) -> EvaluationRequest:
    """The checked inputs of an evaluation (queries, configurations, baseline) and the report cache's key for them."""
    corpus_key, split, specs, baseline = inputs.corpus_key, inputs.split, inputs.specs, inputs.baseline
    stat_test, limit, base_overrides = inputs.stat_test, inputs.limit, inputs.base_overrides
    if not corpus_key:
        raise ConfigError("Pick a corpus first.")
    specs = [s for s in specs if s and s.strip()]
    if not specs:
        raise ConfigError("Pick at least one configuration, e.g. fused and auto.")
    dataset = state.dataset(corpus_key)
    if not dataset.qrels:
        raise ConfigError(
            f"{state.source(corpus_key).label} has no relevance judgments, so it cannot be evaluated (search still works). "
            "Add qrels/<split>.tsv (query-id, corpus-id, grade) and queries.jsonl to a BEIR folder."
        )
    if split not in dataset.qrels:
        split = "test" if "test" in dataset.qrels else sorted(dataset.qrels)[0]
    qrels = dataset.split_qrels(split)
    queries = dataset.split_queries(split)
    configs = parse_configurations(specs)
    loaded = state.run_for(corpus_key)
    notes: list[str] = []
    if loaded is not None:
        queries, configs, baseline, notes = _with_run(loaded, queries, qrels, configs, baseline, split)
    if limit:
        queries = dict(list(queries.items())[: int(limit)])
    base = {k: v for k, v in base_overrides.items() if k not in ("cross_encoder", "coarse_cross_encoder")}
    configs = [dataclasses.replace(c, settings=tuple({**base, **dict(c.settings)}.items())) for c in configs]
    names = [c.name for c in configs]
    baseline = baseline if baseline in names else ("fused" if "fused" in names else names[0])
    pipeline = state.pipeline(corpus_key)
    judged = tuple((q, tuple(sorted(qrels[q].items()))) for q in queries)  # grades made since change the report
    # The report names its corpus: another corpus with the same documents (an upload of a bundled one) is evaluated anew.
    label = state.source(corpus_key).label
    key = state.reports.key(
        pipeline, split, queries, configs, baseline, stat_test, judged, label, loaded.digest if loaded else None
    )
    return EvaluationRequest(
        key, pipeline, queries, qrels, configs, baseline, label, split, tuple(dataset.problems),
        loaded.run if loaded else None, notes, dataset.path,
    )  # fmt: skip


def evaluation_evidence(
    state: AppState, inputs: EvaluationInputs, target_precision: float = 0.8, focus: str | None = None
) -> EvidenceView | None:
    """The evidence panels of the evaluation these inputs ran (from the report cache; None when it has not run)."""
    if not 0 < (target_precision or 0) <= 1:
        raise ConfigError("The target precision must be above 0 and at most 1, e.g. 0.8.")
    request = evaluation_request(state, inputs)
    report = state.reports.get(request.key)
    if report is None:
        return None
    types = query_types_of(request.dataset_path)
    return evidence_view(report, request.pipeline.corpus, types, focus=focus, target_precision=target_precision)


def _with_run(loaded: LoadedRun, queries: dict[str, str], qrels: Qrels, configs: list[Configuration],
              baseline: str | None, split: str) -> tuple[dict[str, str], list[Configuration], str, list[str]]:
    """With a run uploaded for the corpus: the split's judged queries the run ranks, the configurations with
    the run's own lists ("run") added, the run as the baseline (unless another configuration than the
    default fused is named), and notes that say so."""
    judged = {q for q, docs in qrels.items() if any(g > 0 for g in docs.values())}
    in_run = {q: t for q, t in queries.items() if q in loaded.run.queries}
    if not judged & set(in_run):
        raise ConfigError(
            f"none of the judged queries of split {split!r} is in the {loaded.label}: evaluate another split, or drop "
            "the run to evaluate BM25 + dense fusion"
        )
    if not any(c.stage == RUN_STAGE for c in configs):
        if len(configs) >= MAX_CONFIGURATIONS:
            raise ConfigError(
                f"with a run loaded, its own lists are a configuration too: pick at most {MAX_CONFIGURATIONS - 1} others"
            )
        configs = [parse_configuration(RUN_STAGE), *configs]
    run_name = next(c.name for c in configs if c.stage == RUN_STAGE)
    names = [c.name for c in configs]
    if not baseline or baseline == "fused" or baseline not in names:
        baseline = run_name
    notes = [
        f"Before reranking: the {loaded.label}. Configurations that rerank start from its list of each query; "
        f"'{run_name}' is the run itself" + (" and the baseline." if baseline == run_name else ".")
    ]
    missing = len(judged & set(queries)) - len(judged & set(in_run))
    if missing:
        notes.append(f"{missing} judged queries of split {split!r} are not in the run and not evaluated.")
    return in_run, configs, baseline, notes


def render_report(
    report: EvaluationReport, *, cached: bool = False, focus: str | None = None, notes: Sequence[str] = (),
    folder: Path | None = None,
) -> EvaluateView:
    notes = list(notes)
    if cached:
        notes.append("Shown from the cache: the same corpus, queries and configurations were evaluated before.")
    notes += [f"{r.name} could not run: {r.error}" for r in report.configurations if r.error]
    notes += list(report.problems)
    rerankers = [r for r in report.configurations if r.ok and r.config.reranks]
    chosen = next((r for r in rerankers if r.name == focus), rerankers[0] if rerankers else None)
    if chosen is not None:
        deltas = query_deltas(report, chosen.name)
        first = next(iter(chosen.results.values()), None)
        before = "run" if first is not None and first.before.stage == RUN_STAGE else "fused"
        figure = per_query_figure(deltas, chosen.name, before=before)
        lists = delta_lists_html(deltas, chosen.name, before=before)
        changes = changes_html(ranking_changes(chosen.results, report.queries), chosen.name, before=before)
    else:
        figure = empty_figure("Add a configuration with a cross-encoder (e.g. auto) to see before/after per query.")
        lists, changes = "", ""
    usable = [r.name for r in report.configurations if r.ok]
    agreement = agreement_matrix_html(model_agreement(report, usable)) if len(usable) > 1 else ""
    notes_html = "".join(notice_html(n, "warn") for n in notes)
    table = metrics_table_html(report)
    return EvaluateView(notes_html, table, figure, lists, changes, agreement, write_downloads(report, folder), report)


def write_downloads(report: EvaluationReport, folder: Path | None = None) -> list[str]:
    """Per-query CSV, metrics CSV, JSON and a zip of TREC runs in `folder` (the app's scratch folder for this
    evaluation; a fresh temporary one without it)."""
    folder = folder or Path(tempfile.mkdtemp(prefix="rerank-lens-eval-"))
    files = [
        write_text(folder / "per_query.csv", per_query_csv(report)),
        write_text(folder / "metrics.csv", metrics_csv(report)),
        write_json(folder / "evaluation.json", report_to_json(report)),
    ]
    runs = folder / "trec_runs.zip"
    with zipfile.ZipFile(runs, "w", zipfile.ZIP_DEFLATED) as archive:
        for result in report.configurations:
            if result.ok:
                archive.writestr(f"{result.name.replace('/', '_')}.trec", format_run(result.run, result.name))
    files.append(runs)
    return [str(f) for f in files]


def query_comparison_view(
    state: AppState,
    corpus_key: str,
    query: str,
    specs: Sequence[str],
    settings: Settings,
    progress: ProgressFn | None = None,
) -> str:
    """The configurations on the query in the box (HTML): reranking ones start from the query's before list
    as Search does (an uploaded run's, when it ranks the query), and a note says which list that is."""
    specs = [s for s in specs if s and s.strip()]
    if not specs:
        raise ConfigError("Pick at least one configuration, e.g. two cross-encoders as rerank:MODEL.")
    if not corpus_key:
        raise ConfigError("Pick a corpus first.")
    base = {k: v for k, v in settings.overrides().items() if k not in ("cross_encoder", "coarse_cross_encoder")}
    configs = [dataclasses.replace(c, settings=tuple({**base, **dict(c.settings)}.items()))
               for c in parse_configurations(specs)]
    query = " ".join((query or "").split())
    if not query:
        raise ConfigError("The query is empty: type a question or pick an example, then compare.")
    if progress is not None:
        progress(0.2, desc="Running each configuration on the query…")
    pipeline = state.pipeline(corpus_key)
    before = state.before_list(corpus_key, query)
    if before.loaded is not None and before.run is None and any(c.stage == RUN_STAGE for c in configs):
        raise ConfigError(
            f"The {before.loaded.label} has no list for this query, so the 'run' configuration has nothing to show: "
            "pick one of the corpus queries it ranks, or drop 'run'."
        )
    comparison = compare_on_query(pipeline, query, configs, run=before.run, qid=before.qid)
    titles = {d: pipeline.corpus[d].title for hits in comparison.lists.values() for d in hits.doc_ids()[:5]}
    return query_comparison_html(comparison, titles, notes=[before.note] if before.note else ())


def snapshot_file(state: AppState, corpus_key: str, query: str, settings: Settings) -> str:
    """An HTML snapshot of the current query's before-vs-reranked comparison (the before list as Search shows
    it: fused, or an uploaded run's), written to a temp file; when a cross-encoder ran, with why the top
    document scored as it did (each sentence's logit change)."""
    pipeline, result, _, before = run_search(state, corpus_key, query, settings, None)
    overrides = settings.overrides()
    judged = judgments_for(state.dataset(corpus_key), result.query)
    described = {"corpus": state.source(corpus_key).label, "cross-encoder": overrides.get("cross_encoder")}
    explained = None
    config = dataclasses.replace(pipeline.config, **overrides)
    spec = resolve_cross_encoder_spec(config.cross_encoder)
    if result.reranked and spec and result.after.hits:
        top = result.after.hits[0].doc_id
        explained = (top, explain(pipeline.reranker(spec, config), result.query, pipeline.corpus[top].full_text))
    page = html_snapshot(
        result,
        pipeline.corpus,
        judgments=judged[1] if judged else None,
        settings=described,
        explanation=explained,
        before_heading=before.heading,
        notes=[before.note] if before.note else (),
    )
    return str(write_text(state.scratch.new_folder("snapshot") / snapshot_filename(result.query), page))


# ---------------------------------------------------------------- wiring


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "default"


def _inputs(
    corpus_key: str, split: str, limit: Any, stat_test: str, baseline: str | None, rest: Sequence[Any]
) -> EvaluationInputs:
    """The tab's widgets' values as `EvaluationInputs`; `rest` is the configurations, then the settings panel's values."""
    specs, settings_values = rest[:MAX_CONFIGURATIONS], rest[MAX_CONFIGURATIONS:]
    overrides = settings_from(settings_values).overrides()
    baseline = (baseline or "").strip() or None
    return EvaluationInputs(corpus_key, split, tuple(specs), baseline, stat_test, int(limit or 0), overrides)


def _stop_flag(state: AppState, request: gr.Request | None) -> threading.Event:
    return state.stop_flags.get_or_put(_session(request), threading.Event)


HELP = (
    "Evaluate up to four configurations on the corpus's judged queries: `bm25`, `dense`, `fused` (no reranking), "
    "`auto` (fused + the default cross-encoder), `rerank:MODEL`, `cascade:COARSE+FINE`; name one with `NAME=SPEC` "
    "and change a setting with `@rerank_depth=20`. The settings panel above applies to all of them. With a TREC run "
    "uploaded for the corpus, rerankers start from the run's lists and `run` (the run itself) is the baseline."
)


def build_evaluate_tab(ctx: AppContext) -> None:
    if ctx.search is None:
        raise RuntimeError("build the Search tab before Evaluate: a click on a query opens it in Search")
    state = ctx.state
    with tab("Evaluate", "evaluate", HELP):
        with gr.Row():
            split = gr.Dropdown(["test", "train"], value="test", label="Split", allow_custom_value=True, scale=1,
                                elem_id="rl-eval-split")
            limit = gr.Number(value=0, precision=0, minimum=0, label="Queries (0 = all)", scale=1, elem_id="rl-eval-limit")
            stat = gr.Dropdown(list(STAT_TESTS), value="student", label="Significance test", scale=1,
                               info="student: paired t-test · fisher: randomization · tukey: HSD")
            baseline = gr.Textbox(value="fused", label="Baseline", scale=1, elem_id="rl-eval-baseline")
        with gr.Row():
            slots = [
                gr.Dropdown(configuration_choices(), value=DEFAULT_SPECS[i] or None, label=f"Configuration {i + 1}",
                            allow_custom_value=True, elem_id=f"rl-eval-config-{i + 1}")
                for i in range(MAX_CONFIGURATIONS)
            ]
        describe(split, "The split of the corpus's relevance judgments whose queries are evaluated, e.g. test.")
        describe(limit, "Judged queries to evaluate, the first ones of the split; 0: all of them.")
        describe(stat, f"Paired significance test against the baseline: {', '.join(STAT_TESTS)}.")
        describe(baseline, "The configuration the others are tested against, by name or spec (e.g. fused).")
        for slot in slots:
            describe(slot, "A configuration: bm25, dense, fused, auto, rerank:MODEL or cascade:COARSE+FINE; "
                           "NAME=SPEC names it, @rerank_depth=20 changes a setting. Empty: unused.")
        with gr.Row():
            run = gr.Button("Evaluate", variant="primary", elem_id="rl-eval-run")
            cancel = gr.Button("Cancel", variant="stop", elem_id="rl-eval-cancel")
            on_query = gr.Button("Compare on the current query", elem_id="rl-eval-on-query")
            snapshot = gr.Button("HTML snapshot of the current query", elem_id="rl-eval-snapshot")
        query_compare = gr.HTML(elem_id="rl-eval-query-box")
        notes = gr.HTML(elem_id="rl-eval-notes")
        table = gr.HTML(elem_id="rl-eval-metrics")
        sure = gr.HTML(elem_id="rl-eval-sure-box")
        plot = gr.Plot(empty_figure("Run an evaluation to see every query before and after reranking."), show_label=False,
                       elem_id="rl-eval-plot")
        lists = gr.HTML(elem_id="rl-eval-lists", js_on_load=PICK_JS)
        changes = gr.HTML(elem_id="rl-eval-changes-box", js_on_load=PICK_JS)
        agreement = gr.HTML(elem_id="rl-eval-agreement-box")
        slices_box = gr.HTML(elem_id="rl-eval-slices-box")
        queue_box = gr.HTML(elem_id="rl-eval-queue-box", js_on_load=PICK_JS)
        with gr.Row():
            reliability = gr.Plot(
                empty_figure("Run an evaluation with a cross-encoder to see how its scores relate to relevance."),
                show_label=False, elem_id="rl-eval-reliability", scale=3,
            )  # fmt: skip
            with gr.Column(scale=2):
                precision = gr.Number(value=0.8, minimum=0.05, maximum=1.0, step=0.05, label="Target precision (0–1)",
                                      elem_id="rl-eval-precision")  # fmt: skip
                thresholds = gr.HTML(elem_id="rl-eval-thresholds-box")
        files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="rl-eval-files")
        pick = gr.Textbox(visible="hidden", elem_id=PICK_ID)
        build_agreement_section(ctx)  # Krippendorff's alpha between the corpus's judges (reranker/ui/judges_panel.py)
    last_specs: BoundedLRU[str, tuple[str, ...]] = BoundedLRU(1024)  # per browser session: what the clicked names mean

    @named_settings(*CONFIGURATION_NAMES)
    @user_errors
    def on_evaluate(corpus_key, split_value, limit_value, stat_value, baseline_value, *rest,
                    progress=gr.Progress(), request: gr.Request = None):  # noqa: B008 - Gradio's injection
        flag = _stop_flag(state, request)
        flag.clear()

        def report_progress(done: int, total: int, label: str) -> None:
            progress((done, total), desc=f"{label}: {done} / {total} query runs", unit="queries")

        try:
            view = evaluate_view(
                state, _inputs(corpus_key, split_value, limit_value, stat_value, baseline_value, rest),
                progress=report_progress, should_stop=flag.is_set,
            )
        except EvaluationCancelled as exc:
            gr.Warning(f"Evaluation cancelled ({exc}). Nothing was cached; press Evaluate to start again.")
            return (gr.update(),) * 7
        return view.notes, view.table, view.figure, view.lists, view.changes, view.agreement, view.files

    @named_settings(*CONFIGURATION_NAMES)
    @user_errors
    def on_evidence(precision_value, corpus_key, split_value, limit_value, stat_value, baseline_value, *rest):
        inputs = _inputs(corpus_key, split_value, limit_value, stat_value, baseline_value, rest)
        view = evaluation_evidence(state, inputs, float(precision_value or 0.8))
        if view is None:  # cancelled, or not run yet
            return {sure: gr.update(), slices_box: gr.update(), queue_box: gr.update(), reliability: gr.update(),
                    thresholds: gr.update()}  # fmt: skip
        return {sure: view.sure, slices_box: view.slices, queue_box: view.queue, reliability: view.reliability,
                thresholds: view.thresholds}  # fmt: skip

    def on_cancel(request: gr.Request = None):
        _stop_flag(state, request).set()

    @user_errors
    def on_pick(value, corpus_key, request: gr.Request = None):
        qid, config_name = (value or "||").split("|")[:2]
        dataset = state.dataset(corpus_key)
        query = dataset.queries.get(qid)
        if query is None:
            raise ConfigError(f"query {qid!r} is not in this corpus any more; run the evaluation again.")
        specs = last_specs.get(_session(request)) or ()
        spec = next((s for s in specs if s.split("=", 1)[0] == config_name or s == config_name), None)
        changes = search_settings_for(spec) if spec else {}
        settings = {w: gr.update(value=changes[f]) for f, w in zip(SETTING_FIELDS, ctx.settings, strict=True) if f in changes}
        return {**ctx.show_query(corpus_key, query), **settings}

    @named_settings(*CONFIGURATION_NAMES)
    @user_errors
    def on_compare_query(corpus_key, query, *rest, progress=gr.Progress()):  # noqa: B008 - Gradio's injection
        specs, settings_values = rest[:MAX_CONFIGURATIONS], rest[MAX_CONFIGURATIONS:]
        return query_comparison_view(state, corpus_key, query, specs, settings_from(settings_values), progress)

    @named_settings()
    @user_errors
    def on_snapshot(corpus_key, query, *settings_values):
        return [snapshot_file(state, corpus_key, query, settings_from(settings_values))]

    def remember(*specs, request: gr.Request = None):
        last_specs.put(_session(request), tuple(s for s in specs if s))

    def on_corpus(corpus_key):
        try:
            splits = sorted(state.dataset(corpus_key).qrels, key=lambda s: s != "test") if corpus_key else []
        except RerankLensError:
            splits = []
        return gr.update(choices=splits or ["test"], value=splits[0] if splits else "test")

    inputs = [ctx.corpus, split, limit, stat, baseline, *slots, *ctx.settings]
    outputs = [notes, table, plot, lists, changes, agreement, files]
    # One evaluation at a time (they are CPU-bound); Cancel sets this session's flag, polled between queries.
    evidence_inputs = [precision, *inputs]
    evidence_outputs = [sure, slices_box, queue_box, reliability, thresholds]
    run.click(remember, slots, None, api_visibility=PRIVATE, queue=False).then(
        on_evaluate, inputs, outputs, api_name="evaluate", concurrency_limit=1, concurrency_id="evaluate"
    ).success(on_evidence, evidence_inputs, evidence_outputs, api_visibility=PRIVATE)
    precision.submit(on_evidence, evidence_inputs, evidence_outputs, api_visibility=PRIVATE)
    cancel.click(on_cancel, None, None, api_visibility=PRIVATE, queue=False)
    on_query.click(on_compare_query, [ctx.corpus, ctx.query, *slots, *ctx.settings], query_compare, api_name="compare_on_query")
    snapshot.click(on_snapshot, [ctx.corpus, ctx.query, *ctx.settings], files, api_name="snapshot")
    ctx.corpus.change(on_corpus, ctx.corpus, split, api_visibility=PRIVATE)
    opened = pick.change(on_pick, [pick, ctx.corpus], [ctx.tabs, ctx.corpus, ctx.query, *ctx.settings], api_visibility=PRIVATE)
    ctx.chain_after_search(opened.success(ctx.search, ctx.inputs, ctx.search_outputs, api_visibility=PRIVATE))
