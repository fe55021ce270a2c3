"""What the commands share: the `Command` shape, the pipeline's options, loading a dataset's pipeline, and the
judgments made in the app for a dataset."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reranker.commands.arguments import Option, add_config_arguments, config_from_args
from reranker.corpus import Dataset, load_dataset
from reranker.corpus_keys import dataset_key
from reranker.distribution import bundled
from reranker.engines import Engine, EngineConfig, open_engine
from reranker.errors import ConfigError
from reranker.judgments import JudgmentStore, judgments_root, overlay_name
from reranker.pipeline import Pipeline, PipelineConfig
from reranker.speed import reproducible_blas

logger = logging.getLogger("reranker")


@dataclass(frozen=True)
class Command:
    """One subcommand of `python -m reranker`: its parser's arguments and what it runs (returns the exit code)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# Every PipelineConfig field's option is --field-name (old flags: reranker.renamed); types, choices, defaults
# and help (the field's line in the docstring) come from the dataclass. Here only what the field cannot say.
PIPELINE_OPTIONS: dict[str, Option] = {"latency_budget_ms": Option(metavar="MS")}


def add_pipeline_arguments(
    parser: argparse.ArgumentParser, *, skip: Iterable[str] = (), options: Mapping[str, Option] | None = None
) -> None:
    """--dataset, then one option per PipelineConfig field; `skip` leaves fields out, `options` overrides some."""
    add_dataset_argument(parser)
    options = {**PIPELINE_OPTIONS, **(options or {}), **{name: Option(hidden=True) for name in skip}}
    add_config_arguments(parser.add_argument_group("pipeline settings"), PipelineConfig, options)


def add_dataset_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        required=True,
        help="BEIR folder, document file(s) folder, a .zip, or a bundled corpus's name (knowledge, longdocs)",
    )


def judgment_store(name: str) -> JudgmentStore:
    """The overlay of judgments made in the app (or imported) for --dataset's corpus: the folder the app uses."""
    return JudgmentStore(judgments_root() / overlay_name(dataset_key(name)))


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--engine, --address, --workers, --worker-cpus: one option per EngineConfig field."""
    add_config_arguments(parser.add_argument_group("engine (where the cross-encoder's pairs are scored)"), EngineConfig)


def cli_engine(args: argparse.Namespace, *budgets: float | None) -> Engine:
    """The engine the parsed options name, checked before any model loads (ray installed, address answering).
    `budgets` are the latency budgets the queries will run with: per query and interactive, so local only.

    Call it before any model runs: it also asks MKL for thread-count-independent products (`reproducible_blas`),
    so a run is the same file on any engine, any number of workers and threads, and on a busy or idle machine."""
    reproducible_blas()
    config = config_from_args(EngineConfig, args)
    config.validate()
    if config.engine != "local" and any(b is not None for b in budgets):
        raise ConfigError(
            "--latency-budget-ms fits each query's reranking into an interactive time budget; a query set scored on Ray "
            "has none: leave --latency-budget-ms off, or use --engine local"
        )
    return open_engine(config)


def load_cli_dataset(name: str) -> Dataset:
    """--dataset's dataset, its problems printed as notes: a path, or else a bundled corpus of that name
    (so an installed `rerank-lens search --dataset knowledge` works from any folder)."""
    path = Path(name).expanduser()
    shipped = bundled("corpora") / name
    if not path.exists() and (shipped / "corpus.jsonl").is_file():
        path = shipped
    dataset = load_dataset(path)
    for problem in dataset.problems:
        print(f"note: {problem}", file=sys.stderr)
    return dataset


def pipeline_config(args: argparse.Namespace, **extra) -> PipelineConfig:
    """The PipelineConfig the parsed options describe."""
    return config_from_args(PipelineConfig, args, **extra)


def load_pipeline(args: argparse.Namespace, **extra) -> tuple[Pipeline, Dataset]:
    """The dataset named by --dataset (its problems printed as notes) and its pipeline, indexes built."""
    dataset = load_cli_dataset(args.dataset)
    config = pipeline_config(args, **extra)
    start = time.perf_counter()
    pipeline = Pipeline(dataset.corpus, config, show_progress_bar=sys.stderr.isatty())
    logger.info("pipeline ready in %.0f ms", (time.perf_counter() - start) * 1000)
    return pipeline, dataset


def progress_printer(unit: str) -> Callable[[int, int, str], None]:
    """A progress line on stderr, rewritten in place: `done/total unit (label)`."""

    def report(done: int, total: int, label: str = "") -> None:
        end = "\n" if done == total else ""
        detail = f" ({label})" if label else ""
        print(f"\r{done}/{total} {unit}{detail}      ", end=end, file=sys.stderr, flush=True)

    return report
