"""`python -m reranker finetune` and `export-artifact`: train a cross-encoder on a dataset's judgments,
then write it as a compact artifact. Every FinetuneConfig field is an option (see `arguments`)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from reranker.commands.arguments import Option, add_config_arguments, config_from_args
from reranker.commands.common import Command
from reranker.finetune import FinetuneConfig, finetune, record_dev, record_heldout
from reranker.project_models import export_artifact

# Where a FinetuneConfig field needs more than its name and type on the command line.
FINETUNE_OPTIONS: dict[str, Option] = {
    "datasets": Option(
        "--dataset",
        "BEIR folder with qrels, PATH[,max=N][,repeat=R][,negatives=SOURCE][,dev=N]; several are mixed",
        metavar="DATASET",
    ),
    "out": Option(help="directory for the fine-tuned model (must not exist)"),
    "base": Option(help="hub id or local path: a cross-encoder, or a bi-encoder backbone"),
    "split": Option(help="qrels split to train on"),
    "epochs": Option(help="passes over the labelled pairs, each with freshly sampled negatives"),
    "max_length": Option(help="tokens per (query, document) pair"),
    "negatives": Option(help="hard negatives per labelled pair"),
    "candidates": Option(help="first-stage top-k that negatives are sampled from"),
    "negatives_from": Option(help="first-stage list the negatives come from (a dataset's negatives= overrides it)"),
    "dev_queries": Option(help="dev queries per dataset for the dev figures (default: all; a dataset's dev= overrides)"),
    "groups": Option(help="train on groups mined earlier (OUT/groups.json.gz of another run): no mining, no dev figures"),
    "teacher": Option(help="distil: train on this cross-encoder's scores (listwise KL) instead of the labels"),
    "student_layers": Option(help="keep only the base's first N transformer layers (a faster student)"),
    "temperature": Option(help="softmax temperature of the distillation loss"),
    "dataloader_workers": Option(help="DataLoader worker processes (on a CUDA GPU only)"),
    "dev_fraction": Option(help="queries kept for the before/after dev figures"),
    "holdout_fraction": Option(help="queries kept out of training and dev"),
    "seed": Option(help="query split, negative sampling and training"),
    "groups_per_step": Option(help="groups (a positive and its negatives) per optimiser step"),
    "lr_encoder": Option(help="learning rate of the encoder"),
    "lr_head": Option(help="learning rate of the new classification head and the pooler"),
    "warmup_ratio": Option(help="share of the steps with a linearly rising learning rate"),
    "weight_decay": Option(help="AdamW weight decay of the encoder's weights"),
    "freeze_word_embeddings": Option(help="keep the word embeddings as the base model has them"),
    "save_steps": Option(help="steps between checkpoints in OUT/checkpoints"),
    "dev_depth": Option(help="fused top-k reranked for the dev figures"),
    "max_queries": Option(help="use only the first N judged queries (quick trials; default: all)"),
    "min_pairs": Option(help="fewest labelled pairs worth training on"),
    "overwrite": Option(help="replace an existing --out directory"),
    "resume": Option(help="continue from the last checkpoint in --out"),
    "keep_checkpoints": Option(help="keep OUT/checkpoints after a finished run"),
    "threads": Option(help="torch CPU threads (default: every usable core)"),
}


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, FinetuneConfig, FINETUNE_OPTIONS)


def run_finetune(args: argparse.Namespace) -> int:
    config = config_from_args(FinetuneConfig, args)
    if not args.verbose:
        logging.getLogger("reranker.finetune").setLevel(logging.WARNING)
    meta = finetune(config, command=args.command_line)
    summary = {k: meta[k] for k in ("dev_before", "dev_after", "wall_seconds", "interrupted")}
    print(json.dumps({"out": str(Path(config.out).resolve()), **summary}, indent=2))
    return 130 if meta["interrupted"] else 0


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="directory written by `finetune` (from the bundled backbone)")
    parser.add_argument("--out", required=True, help="artifact directory, e.g. models/<name>")
    parser.add_argument("--heldout-json", default=None, help="`eval --json` output on the held-out queries, stored in the card")
    parser.add_argument(
        "--dev-json",
        action="append",
        default=[],
        help="`eval --json` output on dev queries with configurations fused and interpW (e.g. interp0.3): stored "
        "as the dev figures, and the best W becomes the recommended blend (for a run trained from --groups); repeatable",
    )


def run_export(args: argparse.Namespace) -> int:
    if args.dev_json:
        record_dev(args.model, [json.loads(Path(path).read_text()) for path in args.dev_json])
    if args.heldout_json:
        record_heldout(args.model, json.loads(Path(args.heldout_json).read_text()))
    print(json.dumps(export_artifact(args.model, args.out), indent=2))
    return 0


FINETUNE = Command(
    "finetune",
    "fine-tune a cross-encoder on a dataset's judgments with mined hard negatives",
    add_finetune_arguments,
    run_finetune,
)
EXPORT_ARTIFACT = Command(
    "export-artifact",
    "write a fine-tuned model as a compact artifact (float16 deltas on the bundled backbone)",
    add_export_arguments,
    run_export,
)
