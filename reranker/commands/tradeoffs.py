"""`python -m reranker tradeoffs`: nDCG@10, recall@10 and latency (p50, p95 per query, measured here) for
every rerank depth × model × blend over a split's judged queries, the Pareto front, and the best
configuration within a latency budget with its loss against the best overall and that loss's significance.

Each (query, window) pair is scored once per model; shallower depths and every blend are derived from
those raw scores (`reranker.evaluation.tradeoffs` says how latency is measured).
"""

from __future__ import annotations

import argparse
import json
import sys

from reranker.commands.arguments import Option
from reranker.commands.common import Command, add_pipeline_arguments, judgment_store, load_pipeline, progress_printer
from reranker.evaluation.export import write_text
from reranker.evaluation.report import select_queries
from reranker.evaluation.tradeoffs import (
    DEFAULT_BLENDS,
    DEFAULT_DEPTHS,
    SweepResult,
    SweepSettings,
    default_models,
    parse_numbers,
    sweep,
    sweep_csv,
)
from reranker.judgments import with_overlay
from reranker.renamed import add_old_flags
from reranker.speed import reproducible_blas

# Settings the sweep varies itself, or sets per configuration.
SWEPT = ("rerank_depth", "blend", "latency_budget_ms", "coarse_depth")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pipeline_arguments(
        parser,
        skip=SWEPT,
        options={
            "cross_encoder": Option(help="a model to sweep besides the offline family (default auto: the family's default)"),
            "coarse_cross_encoder": Option(help="the cascade's coarse model (default: the family's fast sibling)"),
        },
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="sweep only the first N judged queries")
    parser.add_argument(
        "--models",
        nargs="+",
        action="extend",
        metavar="MODEL",
        help="cross-encoders to sweep (hub ids, local directories, cascade:COARSE+FINE), space- or comma-separated; "
        "default: the offline family, its cascade and --cross-encoder",
    )
    parser.add_argument(
        "--depths", default=",".join(map(str, DEFAULT_DEPTHS)), help="rerank depths, comma-separated; 0 = fused, no reranking"
    )
    parser.add_argument(
        "--blends",
        default=",".join(f"{b:g}" for b in DEFAULT_BLENDS),
        help="weights of the z-scored fused score blended into the cross-encoder's, 0 to 1, comma-separated",
    )
    parser.add_argument(
        "--latency-budget-ms", dest="budget_ms", type=float, default=None, metavar="MS",
        help="p50 latency budget of the recommendation",
    )
    add_old_flags(parser, "budget_ms", "--latency-budget-ms", float)
    parser.add_argument(
        "--coarse-depth",
        dest="sweep_coarse_depth",
        type=int,
        default=None,
        help="fused candidates a cascade's coarse model scores (default: the deepest depth)",
    )
    parser.add_argument(
        "--stat-test", choices=("student", "fisher"), default="student", help="paired test of the recommendation's loss"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--csv", metavar="FILE.csv", help="write one row per configuration to this CSV")
    parser.add_argument(
        "--no-overlay", action="store_true", help="score against the shipped qrels only (no judgments made in the app)"
    )


def run(args: argparse.Namespace) -> int:
    reproducible_blas()
    models = [m for spec in args.models or () for m in spec.split(",") if m.strip()]
    settings = SweepSettings(
        models=tuple(models) if models else default_models(args.cross_encoder, args.coarse_cross_encoder),
        depths=parse_numbers(args.depths, int, "--depths"),
        blends=parse_numbers(args.blends, float, "--blends"),
        budget_ms=args.budget_ms,
        coarse_depth=args.sweep_coarse_depth,
    )
    settings.validate()  # before the indexes are built: a typo costs nothing
    pipeline, dataset = load_pipeline(args, cross_encoder=None, coarse_cross_encoder=None)
    if not args.no_overlay:
        dataset, _ = with_overlay(dataset, judgment_store(args.dataset).load())
    queries, qrels = select_queries(dataset, args.split, limit=args.limit)
    result = sweep(
        pipeline,
        queries,
        qrels,
        settings,
        dataset=str(dataset.path),
        split=args.split,
        stat_test=args.stat_test,
        progress=progress_printer("queries") if sys.stderr.isatty() else None,
    )
    if args.csv:
        write_text(args.csv, sweep_csv(result))
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(format_sweep(result))
        if args.csv:
            print(f"csv: {args.csv}")
    return 0


def format_sweep(result: SweepResult) -> str:
    """The sweep as a plain-text table (front marked *), then the recommendation's sentence and the machine."""
    front = {p.key for p in result.front}
    chosen = result.recommendation.point.key if result.recommendation else None
    lines = [
        f"{result.queries} judged queries of {result.dataset} ({result.split}); {result.pairs_scored} pairs scored once each",
        f"{'':2}{'model':44} {'depth':>5} {'blend':>5} {'nDCG@10':>8} {'R@10':>6} {'p50 ms':>8} {'p95 ms':>8}",
    ]
    for p in sorted(result.points, key=lambda p: (p.p50_ms, -p.ndcg)):
        mark = ("→" if p.key == chosen else " ") + ("*" if p.key in front else " ")
        lines.append(
            f"{mark}{p.model[-44:]:44} {p.depth:>5} {p.blend:>5g} {p.ndcg:>8.4f} {p.recall:>6.3f} "
            f"{p.p50_ms:>8.1f} {p.p95_ms:>8.1f}"
        )
    lines.append("* Pareto front (no other configuration is both better and faster); → recommendation")
    budget = f"budget {result.settings.budget_ms:g} ms: " if result.settings.budget_ms is not None else ""
    lines.append(f"{budget}{result.reason}")
    m = result.machine
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores, {m['device']}")
    return "\n".join(lines)


COMMAND = Command(
    "tradeoffs",
    "quality against latency for every rerank depth, model and blend, with the Pareto front and a recommendation",
    add_arguments,
    run,
)
