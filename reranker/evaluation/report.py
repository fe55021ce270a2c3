"""What `python -m reranker eval` reads and prints: a split's judged queries (optionally those a file
lists), and an evaluation report as JSON or as a plain-text table with significance marks.

The JSON keeps the core shape (dataset, split, queries, cross_encoder, stages, latency_ms) and adds
the configurations, their significance against the baseline, problems and written files.
"""

from __future__ import annotations

from pathlib import Path

from reranker.corpus import Dataset, Qrels
from reranker.errors import ConfigError, DataError
from reranker.evaluation.analysis import EVAL_METRICS, EvaluationReport
from reranker.evaluation.export import report_to_json
from reranker.evaluation.metrics import evaluate_per_query, mean_latency, stage_run


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


def eval_json(report: EvaluationReport, query_count: int, files: dict[str, object] | None = None) -> dict:
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
    extra = report_to_json(report)
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


def format_report(report: EvaluationReport) -> str:
    """A plain-text table: mean per metric with ▲/▼ where the difference from the baseline is
    significant, then p-values and win/tie/loss counts for the first metric."""
    test = {"student": "paired t-test", "fisher": "randomization test", "tukey": "Tukey HSD"}[report.stat_test]
    lines = [
        f"{report.dataset} · split {report.split} · {len(report.judged)} judged queries · "
        f"baseline {report.baseline} · {test}, p < {report.max_p:g}"
    ]
    width = max(14, *(len(r.name) + 2 for r in report.configurations))
    lines.append(f"{'configuration':<{width}}" + "".join(f"{m:>14}" for m in report.metrics) + f"{'ms/query':>12}")
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
            cells.append(f"{result.means[metric]:>12.4f} {mark}")
        lines.append(f"{result.name:<{width}}" + "".join(cells) + f"{result.latency_ms.get('total', 0.0):>12.1f}")
    first = report.metrics[0]
    tested = [s for s in report.significance if s.metric == first]
    if tested:
        lines.append("")
        lines.append(f"{first} against {report.baseline}: ▲/▼ = significantly better/worse")
        for sig in tested:
            lines.append(
                f"  {sig.name:<{width}} Δ {sig.delta:+.4f}  p = {sig.p_value:.4f}  "
                f"wins/ties/losses {sig.wins}/{sig.ties}/{sig.losses}"
            )
    for problem in report.problems:
        lines.append(f"note: {problem}")
    return "\n".join(lines)
