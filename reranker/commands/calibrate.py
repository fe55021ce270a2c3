"""`python -m reranker calibrate --dataset D --split S [--model M ...] [--precision 0.8] [--json]`: per model, a
reliability table of its sigmoid scores against graded relevance on a judged split, and the score threshold that
keeps a target precision with its recall (`reranker.evaluation.calibration`), for passing documents to an LLM."""

from __future__ import annotations

import argparse
import json
import sys

from reranker.commands.arguments import Option
from reranker.commands.common import (
    Command,
    add_pipeline_arguments,
    judgment_store,
    load_pipeline,
    progress_printer,
)
from reranker.errors import ConfigError
from reranker.evaluation.analysis import parse_configuration, run_configurations
from reranker.evaluation.calibration import Calibration, calibrate, scored_pairs
from reranker.evaluation.report import select_queries
from reranker.judgments import with_overlay

HELP = "per model: sigmoid score against graded relevance on a judged split, and the threshold that keeps a target precision"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # --precision is the target precision here; the cross-encoder's arithmetic (PipelineConfig.precision) moves aside.
    add_pipeline_arguments(parser, skip=("cross_encoder",), options={"precision": Option("--arithmetic")})
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--model",
        action="append",
        metavar="M",
        help="a cross-encoder (id, local path or auto); repeat it for several (default: auto)",
    )
    parser.add_argument(
        "--precision",
        dest="target_precision",
        type=float,
        default=0.8,
        help="target precision of the documents kept (default 0.8)",
    )
    parser.add_argument("--bins", type=int, default=10, help="score bins of the reliability table (default 10)")
    parser.add_argument("--judged-only", action="store_true", help="leave unjudged documents out (default: grade 0)")
    parser.add_argument("--limit", type=int, default=None, help="use the first N judged queries only")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    if not 0 < args.target_precision <= 1:
        raise ConfigError("--precision must be above 0 and at most 1, e.g. 0.8")
    if args.bins < 1:
        raise ConfigError("--bins must be at least 1")
    models = args.model or ["auto"]
    configs = [parse_configuration(m if m == "auto" else f"rerank:{m}") for m in models]
    pipeline, dataset = load_pipeline(args)
    dataset, _ = with_overlay(dataset, judgment_store(args.dataset).load())
    queries, qrels = select_queries(dataset, args.split, limit=args.limit)
    progress = progress_printer("query runs") if sys.stderr.isatty() else None
    out = {}
    for model, config in zip(models, configs, strict=True):
        results, resolved, error = run_configurations(pipeline, queries, [config], progress=progress)[config.name]
        if error is not None:
            raise ConfigError(f"model {model} could not run: {error}")
        pairs = scored_pairs(results, qrels)
        out[resolved or model] = calibrate(
            pairs, target_precision=args.target_precision, bins=args.bins, judged_only=args.judged_only
        )
    if args.json:
        print(json.dumps({"dataset": dataset.path, "split": args.split, "queries": len(queries),
                          "models": {m: calibration_json(c) for m, c in out.items()}}, indent=2))  # fmt: skip
    else:
        print("\n\n".join(format_calibration(m, c) for m, c in out.items()))
    return 0


def calibration_json(c: Calibration) -> dict:
    return {
        "pairs": c.pairs,
        "relevant": c.relevant,
        "unjudged": c.unjudged,
        "target_precision": c.target_precision,
        "threshold": None if c.threshold is None else round(c.threshold, 6),
        "precision": None if c.precision is None else round(c.precision, 4),
        "recall": None if c.recall is None else round(c.recall, 4),
        "kept": c.kept,
        "reason": c.reason or None,
        "bins": [
            {
                "lo": b.lo,
                "hi": b.hi,
                "pairs": b.pairs,
                "mean_score": round(b.mean_score, 4),
                "mean_grade": round(b.mean_grade, 4),
                "fraction_relevant": round(b.fraction_relevant, 4),
            }
            for b in c.bins
        ],
    }


def format_calibration(model: str, c: Calibration) -> str:
    lines = [f"{model}: {c.pairs} scored (query, document) pairs, {c.relevant} relevant, {c.unjudged} unjudged"]
    lines.append(f"  {'sigmoid score':<16}{'pairs':>7}{'mean score':>12}{'mean grade':>12}{'relevant':>10}")
    for b in c.bins:
        lines.append(
            f"  {f'{b.lo:.1f}–{b.hi:.1f}':<16}{b.pairs:>7}{b.mean_score:>12.3f}{b.mean_grade:>12.2f}{b.fraction_relevant:>10.0%}"
        )
    if c.threshold is None:
        lines.append(f"  threshold for precision {c.target_precision:g}: none ({c.reason})")
    else:
        lines.append(
            f"  threshold for precision {c.target_precision:g}: keep documents with sigmoid score ≥ {c.threshold:.4f} "
            f"→ precision {c.precision:.2f}, recall {c.recall:.2f} ({c.kept} of {c.pairs} pairs kept)"
        )
    return "\n".join(lines)


COMMAND = Command("calibrate", HELP, add_arguments, run)
