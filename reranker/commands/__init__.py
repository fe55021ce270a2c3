"""The commands of `python -m reranker`, one module each; `reranker.cli` builds the parser from `COMMANDS`.

A command is a `Command` (name, help, a function adding its arguments, a function running it and
returning the exit code). Its options for a config dataclass come from the dataclass's fields
(`arguments.add_config_arguments`), so a new PipelineConfig or FinetuneConfig setting needs no CLI
edit. A new command is a module here and one entry in `COMMANDS`.
"""

from __future__ import annotations

from reranker.commands import app, evaluate, explain, finetune, judgments, mine, models, rerank_run, search, tradeoffs
from reranker.commands.common import Command

COMMANDS: tuple[Command, ...] = (
    search.COMMAND,
    evaluate.COMMAND,
    rerank_run.COMMAND,
    models.COMMAND,
    mine.COMMAND,
    finetune.FINETUNE,
    finetune.EXPORT_ARTIFACT,
    app.COMMAND,
    explain.COMMAND,
    judgments.COMMAND,
    tradeoffs.COMMAND,
)

__all__ = ["COMMANDS", "Command"]
