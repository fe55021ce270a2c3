"""`python -m reranker judgments next --dataset D --compare A B [--n 20]`: the unjudged documents whose grade would
move the comparison of two configurations most (`reranker.evaluation.judge_next`), to grade first in the app."""

from __future__ import annotations

import argparse
import json
import sys

from reranker.commands.common import add_pipeline_arguments, judgment_store, load_pipeline, progress_printer
from reranker.errors import ConfigError
from reranker.evaluation.analysis import parse_configurations, run_configurations
from reranker.evaluation.judge_next import judge_next_queue
from reranker.evaluation.metrics import stage_run
from reranker.evaluation.report import select_queries
from reranker.judgments import with_overlay

HELP = (
    "the unjudged documents whose grade would most change the nDCG@10 difference between two configurations: "
    "grade them first (in the app's Search tab, or with judgments import)"
)
TITLE_COLUMN = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--compare", nargs=2, required=True, metavar=("A", "B"), help="two configurations, as eval's --compare")
    parser.add_argument("--split", default="test")
    parser.add_argument("--n", type=int, default=20, help="how many documents to list (default 20)")
    parser.add_argument("--limit", type=int, default=None, help="look at the first N judged queries only")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ConfigError("--n must be at least 1")
    configs = parse_configurations(args.compare)
    pipeline, dataset = load_pipeline(args)
    dataset, _ = with_overlay(dataset, judgment_store(args.dataset).load())
    queries, qrels = select_queries(dataset, args.split, limit=args.limit)
    judged = {q: docs for q, docs in qrels.items() if any(g > 0 for g in docs.values()) and q in queries}
    if not judged:
        raise ConfigError(f"split {args.split!r} has no query with a relevant judgment to compare on")
    raw = run_configurations(
        pipeline,
        {q: queries[q] for q in judged},
        configs,
        progress=progress_printer("query runs") if sys.stderr.isatty() else None,
    )
    runs = []
    for config in configs:
        results, _, error = raw[config.name]
        if error is not None:
            raise ConfigError(f"configuration {config.name} could not run: {error}")
        runs.append(stage_run(results, config.stage))
    a, b = configs
    queue = judge_next_queue(judged, runs[0], runs[1], n=args.n)
    if args.json:
        items = [
            {
                "query_id": item.query_id,
                "query": queries[item.query_id],
                "doc_id": item.doc_id,
                "title": pipeline.corpus[item.doc_id].title if item.doc_id in pipeline.corpus else "",
                "swing": round(item.swing, 6),
                f"rank_{a.name}": item.rank_a,
                f"rank_{b.name}": item.rank_b,
                "delta_now": round(item.delta_now, 4),
                "delta_if_relevant": round(item.delta_if_relevant, 4),
            }
            for item in queue
        ]
        rule = "swing = change of mean nDCG@10(B) - nDCG@10(A) if the document were graded at the top grade (+ favours B)"
        print(json.dumps({"dataset": dataset.path, "split": args.split, "a": a.name, "b": b.name, "queries": len(judged),
                          "rule": rule, "queue": items}, indent=2))  # fmt: skip
        return 0
    print(
        f"{len(queue)} documents to grade next for {a.name} vs {b.name} on {len(judged)} judged queries; swing = how much "
        f"mean nDCG@10({b.name}) - nDCG@10({a.name}) moves if graded relevant (+ favours {b.name})"
    )
    if not queue:
        print("every document in both top 10s is judged: the comparison does not rest on unjudged documents")
    for item in queue:
        title = pipeline.corpus[item.doc_id].title if item.doc_id in pipeline.corpus else ""
        ranks = f"#{item.rank_a or '-'} / #{item.rank_b or '-'}"
        print(f"  {item.swing:+.4f}  {item.query_id:<10} {item.doc_id:<16} {ranks:<10} {title[:TITLE_COLUMN]}")
    return 0
