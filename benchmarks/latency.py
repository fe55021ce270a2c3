"""End-to-end query latency per stage (p50, p95) for several rerank depths, fresh pairs every query.

Each query runs through the real `Pipeline.search` (BM25, dense, RRF, cross-encoder); the score
cache is emptied before every query, so the cross-encoder scores every pair (a repeated query
would cost only the first stages). One warm-up query per depth is not counted.

    python -m benchmarks.latency --dataset ../shared/datasets/scifact --depths 20 50 100 --queries 10
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import cross_encoder_spec, load, machine, machine_line, percentile, sample_queries, table
from reranker.pipeline import Pipeline, PipelineConfig
from reranker.speed import PRECISIONS

STAGES = ("bm25", "dense", "fused", "reranked")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="BEIR folder or document folder")
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 50, 100], help="rerank depths to measure")
    parser.add_argument("--queries", type=int, default=10, help="queries per depth (different queries for each depth)")
    parser.add_argument("--model", default="auto", help="cross-encoder (default: the pipeline's offline default)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--budget-ms", type=float, default=None, help="also set a latency budget (the planner may cut depth)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    dataset = load(args.dataset)
    spec, note = cross_encoder_spec(args.model)
    config = PipelineConfig(
        cross_encoder=spec,
        max_length=args.max_length,
        precision=args.precision,
        retrieval_depth=max(100, *args.depths),
        latency_budget_ms=args.budget_ms,
    )
    pipeline = Pipeline(dataset.corpus, config)
    queries, _ = sample_queries(dataset, args.queries * len(args.depths) + 1, args.seed)
    texts = list(queries.values())
    pipeline.search(texts[0], rerank_depth=min(args.depths))  # warm-up: model load, first-call overheads
    rows, report = [], {}
    for n, depth in enumerate(args.depths):
        chunk = texts[1 + n * args.queries : 1 + (n + 1) * args.queries] or texts[1:] or texts
        per_stage: dict[str, list[float]] = {s: [] for s in (*STAGES, "total")}
        chosen = []
        for text in chunk:
            pipeline.score_cache.clear()
            start = time.perf_counter()
            result = pipeline.search(text, rerank_depth=depth)
            per_stage["total"].append((time.perf_counter() - start) * 1000)
            for timing in result.timings:
                if timing.stage in per_stage:
                    per_stage[timing.stage].append(timing.ms)
            chosen.append(len(result.stages["reranked"].hits) if "reranked" in result.stages else 0)
        summary = {s: {"p50": percentile(v, 50), "p95": percentile(v, 95)} for s, v in per_stage.items() if v}
        report[str(depth)] = {"queries": len(chunk), "reranked_docs_mean": sum(chosen) / len(chosen), "ms": summary}
        for stage, stats in summary.items():
            rows.append([depth, stage, stats["p50"], stats["p95"]])
    info = machine()
    output = {
        "dataset": dataset.path,
        "model": spec,
        "note": note,
        "precision": pipeline.reranker(spec).precision,
        "budget_ms": args.budget_ms,
        "depths": report,
        "machine": info,
    }
    if args.json:
        print(json.dumps(output, indent=2))
        return 0
    print(machine_line(info))
    print(f"dataset {dataset.path}, model {spec}, precision {output['precision']}, {args.queries} fresh queries per depth")
    if note:
        print(f"note: {note}")
    print(table(["depth", "stage", "p50 ms", "p95 ms"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
