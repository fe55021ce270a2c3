"""`python -m reranker eval`: metrics for one or more configurations over a split's judged
queries, paired significance against a baseline, per-query CSV and TREC run files.

Without `--compare` the configurations are the stages of one pipeline run (bm25, dense, fused and,
when a cross-encoder resolves, reranked), so the output keeps the core issue's shape.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from reranker.errors import ConfigError
from reranker.evaluation.analysis import (
    EVAL_METRICS,
    MAX_CONFIGURATIONS,
    STAT_TESTS,
    EvaluationReport,
    default_configurations,
    evaluate_configurations,
    parse_configurations,
)
from reranker.evaluation.export import per_query_csv, report_to_json, trec_runs_for_report, write_text
from reranker.evaluation.metrics import evaluate_per_query, mean_latency, stage_run

COMPARE_HELP = (
    f"configurations to compare (up to {MAX_CONFIGURATIONS}), space- or comma-separated, each [NAME=]SPEC[@setting=value...]. "
    "SPEC: bm25 | dense | fused (no reranking) | auto (fused + the default cross-encoder) | rerank:MODEL "
    "(fused + MODEL, a hub id or local directory) | cascade:COARSE+FINE (two cross-encoders) | MODEL. "
    "Settings are PipelineConfig fields, e.g. auto@depth=20@interpolation=0.3. "
    "Example: --compare bm25,fused,auto  or  --compare fused mini=rerank:./models/ce"
)


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compare", nargs="+", action="extend", metavar="SPEC", help=COMPARE_HELP)
    parser.add_argument(
        "--baseline", default=None, help="configuration the others are tested against (default: fused if present, else the first)"
    )
    parser.add_argument(
        "--stat-test",
        choices=STAT_TESTS,
        default="student",
        help="paired test via ranx: student (two-sided paired t-test), fisher (randomization), tukey (HSD)",
    )
    parser.add_argument("--max-p", type=float, default=0.05, help="p-value below which a difference counts as significant")
    parser.add_argument("--recall-k", type=int, default=100, help="cutoff for Recall@k (default 100)")
    parser.add_argument("--per-query", metavar="FILE.csv", help="write one row per (query, configuration) to this CSV")
    parser.add_argument("--trec-runs", metavar="DIR", help="write each configuration's run as DIR/<name>.trec")


def restrict_queries(path: str, queries: dict[str, str], qrels: dict) -> tuple[dict[str, str], dict]:
    """Keep the queries whose ids a file lists (one per line), e.g. a fine-tuned model's held-out queries."""
    from pathlib import Path

    from reranker.errors import DataError

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
    if recall_k < 1:
        raise ConfigError("--recall-k must be at least 1")
    return tuple(f"recall@{recall_k}" if m.startswith("recall@") else m for m in EVAL_METRICS)


def run_eval(args: argparse.Namespace, load_pipeline: Callable) -> int:
    configs = parse_configurations(args.compare) if args.compare else default_configurations(args.cross_encoder)
    pipeline, dataset = load_pipeline(args)
    qrels = dataset.split_qrels(args.split)
    queries = dataset.split_queries(args.split)
    if getattr(args, "queries_file", None):
        queries, qrels = restrict_queries(args.queries_file, queries, qrels)
    if args.limit:
        queries = dict(list(queries.items())[: args.limit])
        qrels = {q: qrels[q] for q in queries}
    if not queries:
        print(f"error: split {args.split!r} has judgments but none of its queries are in queries.jsonl", file=sys.stderr)
        return 2
    names = [c.name for c in configs]
    baseline = args.baseline or ("fused" if "fused" in names else names[0])
    report = evaluate_configurations(
        pipeline,
        queries,
        qrels,
        configs,
        baseline=baseline,
        metrics=metrics_for(args.recall_k),
        stat_test=args.stat_test,
        max_p=args.max_p,
        dataset=dataset.path,
        split=args.split,
        problems=dataset.problems,
        progress=_progress_printer() if sys.stderr.isatty() else None,
    )
    for result in report.configurations:
        if result.error:
            print(f"note: configuration {result.name} could not run: {result.error}", file=sys.stderr)
    files: dict[str, object] = {}
    if args.per_query:
        files["per_query_file"] = str(write_text(args.per_query, per_query_csv(report)))
    if args.trec_runs:
        files["trec_runs"] = trec_runs_for_report(report, args.trec_runs)
    if args.json:
        print(json.dumps(eval_json(report, len(queries), files), indent=2))
    else:
        print(format_report(report))
        for label, value in files.items():
            print(f"{label.replace('_', ' ')}: {value}")
    return 0


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


def _progress_printer() -> Callable[[int, int, str], None]:
    def report(done: int, total: int, label: str) -> None:
        end = "\n" if done == total else ""
        print(f"\r{done}/{total} query runs ({label})      ", end=end, file=sys.stderr, flush=True)

    return report
