"""Command line: `python -m reranker search|eval|rerank-run|models|mine|finetune|export-artifact|explain|judgments|app ...`
(and `tradeoffs`), installed as the `rerank-lens` command.

The commands live in `reranker.commands`; this module builds the parser from them, configures
logging and turns package errors into one clear message on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Sequence

from reranker.commands import COMMANDS
from reranker.distribution import version
from reranker.errors import RerankLensError

PROG = "python -m reranker"
CONSOLE_PROG = "rerank-lens"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Rerank Lens: multi-stage retrieval, explained.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (model loads, caches)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_arguments(sub.add_parser(command.name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    args.command_line = " ".join([prog, shlex.join(argv)])  # e.g. recorded in a fine-tuned model's card
    _configure_logging(args.verbose)
    run = next(command.run for command in COMMANDS if command.name == args.command)
    try:
        code = run(args)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not in the interpreter's exit flush
        return code
    except RerankLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail again
        return 141


def console() -> int:
    """The installed `rerank-lens` command (pyproject.toml's [project.scripts])."""
    return main(prog=CONSOLE_PROG)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass
