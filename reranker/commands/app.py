"""`rerank-lens app` (or `python -m reranker app`): the Gradio app, started the way `python app.py` starts it.

The page is built first, then the default corpus is indexed and the default cross-encoder loaded in the
background while the server starts. Gradio and plotly come with the `[app]` extra; without them the
command says what to install.
"""

from __future__ import annotations

import argparse
import logging
import os

from reranker.commands.common import Command
from reranker.errors import ConfigError

APP_PACKAGES = ("gradio", "plotly")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="interface to listen on; 0.0.0.0 for every one (default: $GRADIO_SERVER_NAME or 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        help="port (default: $GRADIO_SERVER_PORT or 7860)",
    )
    parser.add_argument(
        "--corpus",
        default=None,
        help="corpus the page opens on, e.g. knowledge, longdocs or a data folder's name (default: $RERANK_LENS_CORPUS)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        from reranker.ui import AppState, build_demo, launch_options
        from reranker.ui.state import warm_up
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in APP_PACKAGES:
            raise ConfigError(f"the app needs {exc.name}, from the app extra: pip install 'rerank-lens[app]'") from None
        raise
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own startup requests
    state = AppState(start_corpus=args.corpus)
    # Build the page before the warm-up thread starts: two threads importing the same modules at once
    # can hit Python's import-lock deadlock detection (see app.py).
    demo = build_demo(state)
    warm_up(state)
    demo.launch(server_name=args.host, server_port=args.port, **launch_options())
    return 0


COMMAND = Command("app", "start the Gradio app in the browser (needs the [app] extra)", add_arguments, run)
