"""Command line: `python -m reranker search|eval|models ...`. Errors print one clear message, exit code 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence

from reranker.corpus import load_dataset
from reranker.errors import RerankLensError
from reranker.evaluation.compare import movement
from reranker.evaluation.report import add_eval_arguments
from reranker.pipeline import AUTO, Pipeline, PipelineConfig
from reranker.speed import PRECISIONS
from reranker.types import PipelineResult

logger = logging.getLogger("reranker")
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return register


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = PipelineConfig()
    parser.add_argument("--dataset", required=True, help="BEIR folder, document file(s) folder, or a .zip")
    parser.add_argument(
        "--cross-encoder",
        default=AUTO,
        help="hub id, local directory, 'none' to stop after fusion, or 'auto' (default: hub default "
        "when reachable, else the locally fine-tuned model)",
    )
    parser.add_argument("--bi-encoder", default=defaults.bi_encoder, help="sentence-transformers model id or path")
    parser.add_argument("--depth", type=int, default=defaults.rerank_depth, help="candidates the cross-encoder reranks")
    parser.add_argument("--retrieval-depth", type=int, default=defaults.retrieval_depth, help="hits per retriever")
    parser.add_argument("--rrf-k", type=int, default=defaults.rrf_k)
    parser.add_argument("--chunk-tokens", type=int, default=defaults.chunk_tokens)
    parser.add_argument("--chunk-overlap", type=int, default=defaults.chunk_overlap)
    parser.add_argument("--aggregation", choices=("max", "mean", "first"), default=defaults.aggregation)
    parser.add_argument(
        "--interpolation",
        type=float,
        default=defaults.interpolation,
        help="weight of the fused score blended into the cross-encoder score (0-1; default: the fine-tuned "
        "model card's recommendation, 0 for other models)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=defaults.precision,
        help="cross-encoder arithmetic: auto picks the fastest one that keeps rankings on this machine",
    )
    parser.add_argument(
        "--device",
        default=defaults.device,
        help="auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda or cuda:N",
    )
    parser.add_argument(
        "--budget-ms",
        type=float,
        default=None,
        help="latency budget for the whole query; the rerank depth shrinks to fit it (default: no budget)",
    )
    parser.add_argument("--max-length", type=int, default=None, help="cross-encoder max tokens (default: the model's)")
    parser.add_argument("--coarse-cross-encoder", default=None, help="optional small model run first over --coarse-depth")
    parser.add_argument("--coarse-depth", type=int, default=defaults.coarse_depth)
    parser.add_argument("--bm25-backend", choices=("bm25s", "rank_bm25"), default=defaults.bm25_backend)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off by default)")


def config_from_args(args: argparse.Namespace, **extra) -> PipelineConfig:
    return PipelineConfig(
        bi_encoder=args.bi_encoder,
        cross_encoder=args.cross_encoder,
        rerank_depth=args.depth,
        retrieval_depth=args.retrieval_depth,
        rrf_k=args.rrf_k,
        chunk_tokens=args.chunk_tokens,
        chunk_overlap=args.chunk_overlap,
        aggregation=args.aggregation,
        interpolation=args.interpolation,
        coarse_cross_encoder=args.coarse_cross_encoder,
        coarse_depth=args.coarse_depth,
        bm25_backend=args.bm25_backend,
        batch_size=args.batch_size,
        trust_remote_code=args.trust_remote_code,
        precision=args.precision,
        device=args.device,
        latency_budget_ms=args.budget_ms,
        max_length=args.max_length,
        **extra,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reranker", description="Rerank Lens: multi-stage retrieval, explained.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (model loads, caches)")
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help="one query: fused vs reranked ranks, movements, per-stage milliseconds")
    add_pipeline_arguments(search)
    search.add_argument("--query", required=True)
    search.add_argument("--top-n", type=int, default=PipelineConfig().top_n)
    search.add_argument("--json", action="store_true", help="one JSON object on stdout")

    evaluate = sub.add_parser(
        "eval", help="metrics per stage or per configuration (--compare) over a split's judged queries, with significance"
    )
    add_pipeline_arguments(evaluate)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--limit", type=int, default=None, help="evaluate only the first N queries")
    evaluate.add_argument(
        "--queries-file",
        default=None,
        help="evaluate only the query ids listed in this file, one per line (e.g. models/<name>/heldout_queries.txt)",
    )
    evaluate.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_eval_arguments(evaluate)

    sub.add_parser("models", help="list known models and whether each works offline here")
    for extend in _EXTENSIONS:
        extend(sub)
    return parser


# Other modules (fine-tuning, benchmarks) register subcommands here: fn(subparsers) -> None.
_EXTENSIONS: list[Callable[[argparse._SubParsersAction], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return COMMANDS[args.command](args)
    except RerankLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


def _load_pipeline(args: argparse.Namespace, **extra) -> tuple[Pipeline, object]:
    dataset = load_dataset(args.dataset)
    for problem in dataset.problems:
        print(f"note: {problem}", file=sys.stderr)
    config = config_from_args(args, **extra)
    start = time.perf_counter()
    pipeline = Pipeline(dataset.corpus, config, show_progress_bar=sys.stderr.isatty())
    logger.info("pipeline ready in %.0f ms", (time.perf_counter() - start) * 1000)
    return pipeline, dataset


@command("search")
def _search(args: argparse.Namespace) -> int:
    pipeline, _dataset = _load_pipeline(args, top_n=args.top_n)
    result = pipeline.search(args.query)
    for message in result.messages:
        print(f"note: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps(result_to_json(result, pipeline), indent=2))
    else:
        print(format_result(result, pipeline))
    return 0


def result_to_json(result: PipelineResult, pipeline: Pipeline) -> dict:
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
    }


def format_result(result: PipelineResult, pipeline: Pipeline) -> str:
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


@command("eval")
def _eval(args: argparse.Namespace) -> int:
    from reranker.evaluation.report import run_eval

    return run_eval(args, _load_pipeline)


def _progress_printer(unit: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        print(f"\r{done}/{total} {unit}", end="\n" if done == total else "", file=sys.stderr, flush=True)

    return report


@command("models")
def _models(args: argparse.Namespace) -> int:
    from reranker.models import KNOWN_BI_ENCODERS, KNOWN_CROSS_ENCODERS, PROJECT_MODELS, is_available_offline

    print("cross-encoders:")
    for spec in [*PROJECT_MODELS, *(m for m, _ in KNOWN_CROSS_ENCODERS)]:
        print(f"  {'offline ok' if is_available_offline(spec) else 'needs hub ':<11} {spec}")
    print("bi-encoders:")
    for spec, _ in KNOWN_BI_ENCODERS:
        print(f"  {'offline ok' if is_available_offline(spec) else 'needs hub ':<11} {spec}")
    return 0


# `finetune` lives in its own module; it adds its parser to _EXTENSIONS (imports torch only when run).
from reranker.finetune import register_command as _register_finetune  # noqa: E402

_register_finetune()
