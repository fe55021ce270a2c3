"""`python -m reranker eval`: metrics for one or more configurations over a split's judged
queries, paired significance against a baseline, per-query CSV and TREC run files.

The judgments made in the app for the same corpus (its overlay, `reranker.judgments`) are merged over the
shipped qrels unless `--no-overlay`; the output says how many were used.

Without `--compare` the configurations are the stages of one pipeline run (bm25, dense, fused and,
when a cross-encoder resolves, reranked), so the output keeps the core issue's shape.
"""

from __future__ import annotations

import argparse
import json
import sys

from reranker.commands.common import (
    Command,
    add_engine_arguments,
    add_pipeline_arguments,
    cli_engine,
    judgment_store,
    load_pipeline,
    progress_printer,
)
from reranker.evaluation.analysis import (
    MAX_CONFIGURATIONS,
    STAT_TESTS,
    default_configurations,
    evaluate_configurations,
    parse_configurations,
)
from reranker.evaluation.evidence import report_evidence
from reranker.evaluation.export import per_query_csv, trec_runs_for_report, write_text
from reranker.evaluation.report import eval_json, format_report, format_slices, metrics_for, select_queries, slices_json
from reranker.evaluation.slices import query_types_of, report_slices
from reranker.judgments import with_overlay

COMPARE_HELP = (
    f"configurations to compare (up to {MAX_CONFIGURATIONS}), space- or comma-separated, each [NAME=]SPEC[@setting=value...]. "
    "SPEC: bm25 | dense | fused (no reranking) | auto (fused + the default cross-encoder) | rerank:MODEL "
    "(fused + MODEL, a hub id or local directory) | cascade:COARSE+FINE (two cross-encoders) | MODEL. "
    "Settings are PipelineConfig fields, e.g. auto@rerank_depth=20@blend=0.3. "
    "Example: --compare bm25,fused,auto  or  --compare fused mini=rerank:./models/ce"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N queries")
    parser.add_argument(
        "--queries-file",
        default=None,
        help="evaluate only the query ids listed in this file, one per line (e.g. models/<name>/heldout_queries.txt)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
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
    parser.add_argument(
        "--slices",
        action="store_true",
        help="group the queries by type, length, document length and truncation, lexical overlap and first-stage rank, "
        "with each group's mean change from reranking (nDCG@10) and its 95%% interval",
    )
    parser.add_argument("--recall-k", type=int, default=100, help="cutoff for Recall@k (default 100)")
    parser.add_argument("--per-query", metavar="FILE.csv", help="write one row per (query, configuration) to this CSV")
    parser.add_argument("--trec-runs", metavar="DIR", help="write each configuration's run as DIR/<name>.trec")
    parser.add_argument(
        "--no-overlay",
        action="store_true",
        help="score against the shipped qrels only, leaving out the judgments made in the app "
        "($RERANK_LENS_JUDGMENTS, default ~/.local/share/rerank-lens/judgments)",
    )
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.compare:
        configs = parse_configurations(args.compare)
    else:
        configs = default_configurations(args.cross_encoder, args.coarse_cross_encoder)
    metrics = metrics_for(args.recall_k)
    budgets = [args.latency_budget_ms, *(dict(c.settings).get("latency_budget_ms") for c in configs)]
    engine = cli_engine(args, *budgets)  # before any model runs (see cli_engine)
    pipeline, dataset = load_pipeline(args)
    store = judgment_store(args.dataset)
    used = 0
    if not args.no_overlay:
        dataset, used = with_overlay(dataset, store.load())  # its problems say how many, and where from
    queries, qrels = select_queries(dataset, args.split, queries_file=args.queries_file, limit=args.limit)
    names = [c.name for c in configs]
    with engine:
        report = evaluate_configurations(
            pipeline,
            queries,
            qrels,
            configs,
            baseline=args.baseline or ("fused" if "fused" in names else names[0]),
            metrics=metrics,
            stat_test=args.stat_test,
            max_p=args.max_p,
            dataset=dataset.path,
            split=args.split,
            problems=dataset.problems,
            progress=progress_printer("query runs") if sys.stderr.isatty() else None,
            engine=engine,
        )
    for result in report.configurations:
        if result.error:
            print(f"note: configuration {result.name} could not run: {result.error}", file=sys.stderr)
    files: dict[str, object] = {}
    if args.per_query:
        files["per_query_file"] = str(write_text(args.per_query, per_query_csv(report)))
    if args.trec_runs:
        files["trec_runs"] = trec_runs_for_report(report, args.trec_runs)
    evidence = report_evidence(report)
    slices = report_slices(report, pipeline.corpus, query_types_of(dataset.path)) if args.slices else None
    if args.json:
        overlay = {"overlay_judgments": used, "overlay_path": str(store.folder) if used else None}
        extra = {"slices": {name: slices_json(items) for name, items in slices.items()}} if slices is not None else {}
        print(json.dumps({**eval_json(report, len(queries), files, evidence), **overlay, **extra}, indent=2))
    else:
        print(format_report(report, evidence))
        if slices is not None:
            print()
            print("\n\n".join(format_slices(name, items) for name, items in slices.items()) or SLICES_NEED_RERANKING)
        for label, value in files.items():
            print(f"{label.replace('_', ' ')}: {value}")
    return 0


SLICES_NEED_RERANKING = "slices: no configuration reranks; add one (e.g. --compare fused,auto) to see where reranking helps"


COMMAND = Command(
    "eval",
    "metrics per stage or per configuration (--compare) over a split's judged queries, with significance",
    add_arguments,
    run,
)
