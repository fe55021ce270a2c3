"""`python -m reranker rerank-run`: rerank a TREC run against a dataset's documents, write the reranked run,
and evaluate both against the dataset's qrels when it has them, the input run being the baseline.

Each query of the run is reranked by `RerankStages.rerank`, the code `Pipeline.search` runs after fusion:
the same chunking, cascade, blend (with the run's own scores, z-scored) and score cache. The whole run
is checked against the dataset before a model loads, and the output is written only once every query
is reranked, in one rename: bad input never leaves a half-written file.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

from reranker.commands.arguments import Option
from reranker.commands.common import (
    Command,
    add_engine_arguments,
    add_pipeline_arguments,
    cli_engine,
    load_cli_dataset,
    pipeline_config,
    progress_printer,
)
from reranker.corpus import Dataset
from reranker.errors import ConfigError
from reranker.evaluation.analysis import (
    FIRST_STAGE_FIELDS,
    Configuration,
    ConfigurationRun,
    EvaluationReport,
    score_configurations,
)
from reranker.evaluation.metrics import stage_run
from reranker.evaluation.report import eval_json, format_report
from reranker.pipeline import AUTO, PipelineConfig, RerankStages, resolve_cross_encoder_spec
from reranker.runs import RUN_STAGE, TrecRun, check_run, read_run, write_run
from reranker.types import PipelineResult

RERANKED = "reranked"
# Where the run takes the fused list's place, the help says so.
RUN_OPTIONS = {
    "rerank_depth": Option(help="Candidates of each query of the run the cross-encoder scores."),
    "blend": Option(
        help="Weight of the run's z-scored score blended into the z-scored cross-encoder score, 0 to 1; "
        "None takes a fine-tuned model card's recommendation (0 for other models)."
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="IN.trec", help="the TREC run to rerank: qid Q0 docid rank score tag")
    parser.add_argument(
        "--out",
        required=True,
        metavar="OUT.trec",
        help="where the reranked run goes: each query's reranked top, then the rest of the input run in its order",
    )
    # The first stage is the run: retrieval and fusion settings have nothing to act on, and the whole
    # reranked list is written (top-n only cuts what a view shows).
    add_pipeline_arguments(parser, skip=(*FIRST_STAGE_FIELDS, "top_n"), options=RUN_OPTIONS)
    parser.add_argument("--split", default="test", help="qrels split to evaluate against, when the dataset has qrels")
    parser.add_argument("--limit", type=int, default=None, help="rerank only the run's first N queries")
    parser.add_argument("--tag", default=RERANKED, help="the reranked run's tag (default: reranked)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, not {args.limit}")
    dataset = load_cli_dataset(args.dataset)
    if not dataset.queries:
        raise ConfigError(
            f"{args.dataset} has no queries file (queries.jsonl, lines of {{\"_id\": ..., \"text\": ...}}): "
            "rerank-run reads each run query's text from it"
        )
    trec = read_run(args.run)
    if args.limit:
        trec = trec.head(args.limit)
    check_run(trec, dataset.corpus, dataset.queries)
    config = pipeline_config(args)
    engine = cli_engine(args, config.latency_budget_ms)  # before any model runs (see cli_engine)
    model = _cross_encoder(config)
    out = _writable(Path(args.out).expanduser())

    stages = RerankStages(dataset.corpus, config)
    progress = progress_printer("queries") if sys.stderr.isatty() else None
    results: dict[str, PipelineResult] = {}
    calls = ((qid, functools.partial(stages.rerank, dataset.queries[qid], trec.ranked_list(qid))) for qid in trec.queries)
    with engine:
        for done, (qid, result) in enumerate(engine.run(calls), start=1):
            results[qid] = result
            if progress:
                progress(done, len(trec), qid)
    write_run(out, stage_run(results, RERANKED), args.tag)

    notes = list(dict.fromkeys(m for result in results.values() for m in result.messages))
    report, skipped = evaluate(dataset, args.split, trec, results, model, config)
    if skipped:
        notes.append(skipped)
    if args.json:
        data = {
            "dataset": dataset.path,
            "run": str(args.run),
            "out": str(out),
            "queries": len(results),
            "cross_encoder": model,
            "engine": engine.name,
            "notes": notes,
            "evaluation": eval_json(report, len(report.queries)) if report else None,
        }
        print(json.dumps(data, indent=2))
    else:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"reranked {len(results)} queries of {args.run} with {model}: {out}")
        if report is not None:
            print(format_report(report))
    return 0


def evaluate(
    dataset: Dataset,
    split: str,
    trec: TrecRun,
    results: dict[str, PipelineResult],
    model: str,
    config: PipelineConfig,
) -> tuple[EvaluationReport | None, str | None]:
    """The input run (baseline) and the reranked run over the run's judged queries, or why not."""
    if not dataset.qrels:
        return None, "the dataset has no qrels, so the runs are not evaluated"
    if split not in dataset.qrels:
        available = ", ".join(sorted(dataset.qrels))
        return None, f"no qrels for split {split!r} (available: {available}); pass --split to evaluate"
    qrels = dataset.qrels[split]
    judged = {q for q, docs in qrels.items() if any(g > 0 for g in docs.values())}
    queries = {q: dataset.queries[q] for q in trec.queries if q in judged}
    if not queries:
        return None, f"none of the run's queries has a relevant judgment in split {split!r}, so nothing is evaluated"
    configs = [
        Configuration(RUN_STAGE, RUN_STAGE, spec=trec.path),
        Configuration(RERANKED, RERANKED, config.cross_encoder, config.coarse_cross_encoder, spec=model),
    ]
    raw = {RUN_STAGE: ConfigurationRun(results), RERANKED: ConfigurationRun(results, model)}
    report = score_configurations(raw, configs, queries, qrels, baseline=RUN_STAGE, dataset=dataset.path, split=split)
    missing = len(judged & set(dataset.queries)) - len(queries)
    return report, (f"{missing} judged queries of split {split!r} are not in the run and not evaluated" if missing else None)


def _cross_encoder(config: PipelineConfig) -> str:
    model = resolve_cross_encoder_spec(config.cross_encoder) if config.rerank_depth else None
    if model is None:
        if config.rerank_depth == 0:
            raise ConfigError("rerank depth 0 turns reranking off: give --rerank-depth 1 or more")
        if config.cross_encoder == AUTO:
            raise ConfigError(
                "no cross-encoder is available offline for 'auto': pass --cross-encoder with a local model directory, "
                "or connect to the hub"
            )
        raise ConfigError("rerank-run needs a cross-encoder: pass --cross-encoder MODEL (a hub id, a local directory or auto)")
    return model


def _writable(path: Path) -> Path:
    """The output path, refused before any work when it cannot be written."""
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder: give a file name, e.g. {path / 'reranked.trec'}")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot create its folder ({exc.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"--out {path}: the folder {folder} is not writable")
    return path


COMMAND = Command(
    "rerank-run",
    "rerank a TREC run against a dataset's documents, write the reranked run, evaluate both when the dataset has qrels",
    add_arguments,
    run,
)
