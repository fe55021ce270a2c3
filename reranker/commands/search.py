"""`python -m reranker search`: one query, fused vs reranked ranks, movements and per-stage milliseconds."""

from __future__ import annotations

import argparse
import json
import sys

from reranker.commands.common import Command, add_pipeline_arguments, load_pipeline
from reranker.evaluation.compare import movement
from reranker.pipeline import Pipeline
from reranker.types import PipelineResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--query", required=True)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    pipeline, _dataset = load_pipeline(args)
    result = pipeline.search(args.query)
    for message in result.messages:
        print(f"note: {message}", file=sys.stderr)
    if result.input_note:
        print(f"note: {result.input_note.text}", file=sys.stderr)
    if args.json:
        print(json.dumps(result_to_json(result, pipeline), indent=2))
    else:
        print(format_result(result, pipeline))
    return 0


def result_to_json(result: PipelineResult, pipeline: Pipeline) -> dict:
    """The query's documents (final top-n, then fused top-n that left it): ranks per stage, movement, scores."""
    top_n = result.top_n
    before, after = result.before, result.after
    shown = after.doc_ids()[:top_n] + [d for d in before.doc_ids()[:top_n] if d not in after.doc_ids()[:top_n]]
    rows = []
    for doc_id in shown:
        move = movement(doc_id, before, after, top_n)
        hit = after.get(doc_id)
        rows.append(
            {
                "doc_id": doc_id,
                "title": pipeline.corpus[doc_id].title,
                "ranks": result.ranks(doc_id),
                "movement": move.kind,
                "movement_label": move.label,
                "score": hit.score if hit else None,
                "normalized_score": hit.normalized if hit else None,
                "chunks": len(hit.chunks) if hit else None,
                "deciding_chunk": hit.deciding_chunk if hit else None,
            }
        )
    return {
        "query": result.query,
        "final_stage": result.final_stage,
        "score_label": after.score_label,
        "normalized_label": after.normalized_label,
        "results": rows,
        "latency_ms": {t.stage: round(t.ms, 2) for t in result.timings},
        "load_ms": {t.stage: round(t.load_ms, 2) for t in [*pipeline.startup, *result.timings] if t.load_ms},
        "messages": list(result.messages),
        "input_note": result.input_note.text if result.input_note else None,
    }


def format_result(result: PipelineResult, pipeline: Pipeline) -> str:
    """A plain-text table of the same rows, then latency per stage and what loading cost."""
    data = result_to_json(result, pipeline)
    lines = [f"query: {result.query}", f"score: {data['score_label']}", ""]
    lines.append(f"{'fused':>5} {'final':>5}  {'move':<16} {'score':>8}  doc")
    for row in data["results"]:
        fused = row["ranks"].get("fused")
        final = row["ranks"].get(result.final_stage)
        in_top = final is not None and final <= result.top_n
        score = f"{row['score']:8.3f}" if row["score"] is not None and in_top else " " * 8
        title = row["title"] or pipeline.corpus[row["doc_id"]].text[:60]
        lines.append(
            f"{fused if fused else '-':>5} {final if in_top else '-':>5}  {row['movement_label']:<16} {score}  "
            f"{row['doc_id']}  {title[:70]}"
        )
    lines.append("")
    lines.append("latency: " + ", ".join(f"{t.stage} {t.ms:.1f} ms" for t in result.timings))
    loads = [t for t in [*pipeline.startup, *result.timings] if t.load_ms]
    if loads:
        lines.append("startup: " + ", ".join(f"{t.stage} {t.load_ms:.0f} ms ({t.detail})" for t in loads))
    return "\n".join(lines)


COMMAND = Command("search", "one query: fused vs reranked ranks, movements, per-stage milliseconds", add_arguments, run)
