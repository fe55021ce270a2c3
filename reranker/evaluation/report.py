"""What `python -m reranker eval` reads and prints: a split's judged queries (optionally those a file
lists), and an evaluation report as JSON or as a plain-text table with significance marks.

The JSON keeps the core shape (dataset, split, queries, cross_encoder, stages, latency_ms) and adds
the configurations, their significance against the baseline, problems and written files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reranker.corpus import Dataset, Qrels
from reranker.errors import ConfigError, DataError
from reranker.evaluation.analysis import EVAL_METRICS, EvaluationReport
from reranker.evaluation.evidence import ReportEvidence, report_evidence
from reranker.evaluation.export import report_to_json
from reranker.evaluation.metrics import evaluate_per_query, mean_latency, stage_run
from reranker.evaluation.slices import Slice


def restrict_queries(path: str, queries: dict[str, str], qrels: dict) -> tuple[dict[str, str], dict]:
    """Keep the queries whose ids a file lists (one per line), e.g. a fine-tuned model's held-out queries."""
    try:
        wanted = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise DataError(
            f"cannot read the queries file ({exc.strerror}); give a text file of query ids, one per line", path=path
        ) from None
    kept = {q: queries[q] for q in wanted if q in queries}
    if not kept:
        raise DataError("none of the query ids in this file have judgments in the chosen split; check --split", path=path)
    return kept, {q: qrels[q] for q in kept}


def metrics_for(recall_k: int) -> tuple[str, ...]:
    """The evaluation metrics with Recall cut at `recall_k`."""
    if recall_k < 1:
        raise ConfigError("--recall-k must be at least 1")
    return tuple(f"recall@{recall_k}" if m.startswith("recall@") else m for m in EVAL_METRICS)


def select_queries(
    dataset: Dataset, split: str, *, queries_file: str | None = None, limit: int | None = None
) -> tuple[dict[str, str], Qrels]:
    """A split's judged queries and their qrels, kept to the ids a file lists and to the first `limit`."""
    qrels = dataset.split_qrels(split)
    queries = dataset.split_queries(split)
    if queries_file:
        queries, qrels = restrict_queries(queries_file, queries, qrels)
    if limit:
        queries = dict(list(queries.items())[:limit])
        qrels = {q: qrels[q] for q in queries}
    if not queries:
        raise DataError(f"split {split!r} has judgments but none of its queries are in queries.jsonl", path=dataset.path or None)
    return queries, qrels


def eval_json(
    report: EvaluationReport, query_count: int, files: dict[str, object] | None = None, evidence: ReportEvidence | None = None
) -> dict:
    """The core shape (dataset, split, queries, cross_encoder, stages, latency_ms) plus
    metrics, baseline, stat_test, max_p, configurations, problems and written files."""
    primary = next((r for r in report.configurations if r.ok and r.config.reranks), None)
    primary = primary or next((r for r in report.configurations if r.ok), None)
    stages: dict[str, dict[str, float]] = {}
    latency: dict[str, float] = {}
    if primary is not None:
        names: list[str] = []
        for result in primary.results.values():
            names += [s for s in result.stages if s not in names]
        for stage in names:
            per_query = evaluate_per_query(report.qrels, stage_run(primary.results, stage), report.metrics)
            count = len(per_query) or 1
            stages[stage] = {m: round(sum(v[m] for v in per_query.values()) / count, 4) for m in report.metrics}
        latency = {s: round(v, 2) for s, v in mean_latency(primary.results).items()}
    extra = report_to_json(report, evidence)
    output = {
        "dataset": report.dataset,
        "split": report.split,
        "queries": query_count,
        "cross_encoder": primary.model if primary is not None else None,
        "stages": stages,
        "latency_ms": latency,
    }
    output.update({k: v for k, v in extra.items() if k not in output})
    output.update({"per_query_file": None, "trec_runs": None, **(files or {})})
    return output


def format_report(report: EvaluationReport, evidence: ReportEvidence | None = None) -> str:
    """A plain-text table: mean per metric with ▲/▼ where the difference from the baseline is
    significant; the bootstrap 95% intervals and, where judged@10 < 1, the bounds unjudged documents allow;
    then p-values, the difference's interval, the minimum detectable effect and win/tie/loss counts for the
    first metric."""
    evidence = evidence or report_evidence(report)
    test = {"student": "paired t-test", "fisher": "randomization test", "tukey": "Tukey HSD"}[report.stat_test]
    lines = [
        f"{report.dataset} · split {report.split} · {len(report.judged)} judged queries · "
        f"baseline {report.baseline} · {test}, p < {report.max_p:g}"
    ]
    width = max(14, *(len(r.name) + 2 for r in report.configurations))
    header = f"{'configuration':<{width}}" + "".join(f"{m:>18}" for m in report.metrics)
    lines.append(header + f"{'ms/query':>12}")
    for result in report.configurations:
        if not result.ok:
            lines.append(f"{result.name:<{width}}error: {(result.error or '').splitlines()[0]}")
            continue
        cells = []
        for metric in report.metrics:
            sig = report.significance_for(result.name, metric)
            mark = " "
            if sig is not None and sig.significant:
                mark = "▲" if sig.delta > 0 else "▼"
            cells.append(f"{result.means[metric]:>16.4f} {mark}")
        lines.append(f"{result.name:<{width}}" + "".join(cells) + f"{result.latency_ms.get('total', 0.0):>12.1f}")
    lines.append("")
    lines.append(f"95% intervals (paired bootstrap over the {evidence.queries} queries, {evidence.resamples} resamples)")
    for result in report.configurations:
        if result.name in evidence.ci95:
            intervals = evidence.ci95[result.name]
            lines.append(f"{result.name:<{width}}" + "".join(f"{_interval(intervals[m]):>18}" for m in report.metrics))
    if evidence.bounds:
        lines.append("")
        lines.append(
            f"bounds with unjudged top-k documents counted not relevant (min) or relevant at grade {evidence.top_grade} (max)"
        )
        for name, bounds in evidence.bounds.items():
            cells = "".join(f"{_interval(bounds[m]) if m in bounds else '':>18}" for m in report.metrics)
            lines.append(f"{name:<{width}}{cells}   judged@10 {evidence.judged.get(name, 0.0):.2f}")
    first = report.metrics[0]
    tested = [s for s in report.significance if s.metric == first]
    if tested:
        lines.append("")
        lines.append(
            f"{first} against {report.baseline}: ▲/▼ = significantly better/worse; MDE = smallest difference the test "
            f"finds 80% of the time at this many queries; n({evidence.effect:g}) = queries a difference of "
            f"{evidence.effect:g} needs"
        )
        for sig in tested:
            paired = evidence.for_significance(sig.name, sig.metric)
            extra = ""
            if paired is not None:
                extra = (
                    f"  95% CI {_interval(paired.delta_ci95, signed=True)}  MDE {_maybe(paired.mde)}"
                    f"  n({evidence.effect:g}) {paired.queries_for_effect or '—'}"
                )
            lines.append(
                f"  {sig.name:<{width}} Δ {sig.delta:+.4f}  p = {sig.p_value:.4f}{extra}  "
                f"wins/ties/losses {sig.wins}/{sig.ties}/{sig.losses}"
            )
    for problem in report.problems:
        lines.append(f"note: {problem}")
    return "\n".join(lines)


def _interval(pair: tuple[float, float], *, signed: bool = False) -> str:
    fmt = "+.3f" if signed else ".3f"
    return f"[{pair[0]:{fmt}}, {pair[1]:{fmt}}]"


def _maybe(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def format_slices(name: str, slices: Sequence[Slice], metric: str = "ndcg@10") -> str:
    """One reranking configuration's slices as a text table: queries, helped/hurt, mean change and its interval."""
    lines = [f"slices of {name}: change in {metric} against the list before reranking (mean, 95% bootstrap interval)"]
    if not slices:
        return lines[0] + "\n  (no reranked queries)"
    feature = None
    for item in slices:
        if item.feature != feature:
            feature = item.feature
            lines.append(f"  {feature}")
        lines.append(
            f"    {item.label:<42}{item.queries:>4} queries  {item.helped:>3} helped {item.hurt:>3} hurt  "
            f"Δ {item.mean_delta:+.3f} {_interval(item.ci95, signed=True)}"
        )
    return "\n".join(lines)


def slices_json(slices: Sequence[Slice]) -> list[dict]:
    return [
        {
            "feature": s.feature,
            "bin": s.label,
            "queries": s.queries,
            "helped": s.helped,
            "hurt": s.hurt,
            "mean_delta": round(s.mean_delta, 4),
            "ci95": [round(s.ci95[0], 4), round(s.ci95[1], 4)],
        }
        for s in slices
    ]
