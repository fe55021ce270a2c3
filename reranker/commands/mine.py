"""`python -m reranker mine`: the training groups of a dataset mix, written to one gzip file.

Mining needs the first stage (bm25s, FAISS, the bi-encoder); training does not. So a GPU machine
without them trains from this file (`finetune --groups FILE`): the heavy part travels, compactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from reranker.commands.arguments import Option, add_config_arguments, config_from_args
from reranker.commands.common import Command
from reranker.commands.finetune import FINETUNE_OPTIONS
from reranker.errors import ConfigError
from reranker.finetune import MINED_FIELDS, FinetuneConfig, mine_groups, prepare_mix
from reranker.mining import save_groups

# The options of `mine`: what decides the groups (recorded in the file), and how the command runs.
MINING_FIELDS = {*MINED_FIELDS, "out", "dev_queries", "max_queries", "min_pairs", "overwrite"}


def add_mine_arguments(parser: argparse.ArgumentParser) -> None:
    options = {
        field.name: FINETUNE_OPTIONS.get(field.name, Option()) if field.name in MINING_FIELDS else Option(hidden=True)
        for field in dataclasses.fields(FinetuneConfig)
    }
    options["out"] = Option(help="groups file to write, e.g. runs/general.groups.json.gz")
    add_config_arguments(parser, FinetuneConfig, options)


def run_mine(args: argparse.Namespace) -> int:
    config = config_from_args(FinetuneConfig, args)
    out = Path(config.out)
    if out.exists() and not config.overwrite:
        raise ConfigError(f"--out {out} already exists; pass --overwrite to replace it")
    groups, meta = mine_groups(config, prepare_mix(config))
    save_groups(out, groups, {**meta, "config": {k: getattr(config, k) for k in sorted(MINING_FIELDS - {"out"})}})
    summary = {d["name"]: d["queries"] for d in meta["datasets"]}
    print(
        json.dumps({"out": str(out.resolve()), "groups": len(groups), "bytes": out.stat().st_size, "queries": summary}, indent=2)
    )
    return 0


COMMAND = Command(
    "mine",
    "mine training groups (hard negatives from the first stage) into one file for `finetune --groups`",
    add_mine_arguments,
    run_mine,
)
