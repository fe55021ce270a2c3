"""`rerank-lens app` (or `python -m reranker app`): the Gradio app, started the way `python app.py` starts it.

The page is built first, then the default corpus is indexed and the default cross-encoder loaded in the
background while the server starts. Each visitor gets a workspace (`reranker.ui.workspaces`) whose limits
the options set; `--auth FILE` asks for a login (`reranker.ui.login`), and the workspace then follows the
user. Gradio and plotly come with the `[app]` extra; without them the command says what to install.
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
    parser.add_argument(
        "--auth",
        default=None,
        metavar="FILE",
        help="ask for a login: a file of name:password (or name:sha256:<hex>) lines; each user's workspace then "
        "follows the user (default: $RERANK_LENS_AUTH; none: no login)",
    )
    parser.add_argument(
        "--root-path",
        default=os.environ.get("GRADIO_ROOT_PATH", ""),
        help="the path the app is served under behind a reverse proxy, e.g. /rerank-lens (default: $GRADIO_ROOT_PATH)",
    )
    parser.add_argument("--workspace-days", type=float, default=None,
                        help="days without a visit after which a workspace and its files are removed "
                             "(default: $RERANK_LENS_WORKSPACE_DAYS or 7)")
    parser.add_argument("--workspace-mb", type=float, default=None,
                        help="megabytes of uploads kept per workspace (default: $RERANK_LENS_WORKSPACE_MB or 200)")
    parser.add_argument("--workspace-uploads", type=int, default=None,
                        help="uploaded corpora kept per workspace (default: $RERANK_LENS_WORKSPACE_UPLOADS or 10)")


def serve(host: str, port: int, *, corpus: str | None = None, auth: str | None = None, root_path: str = "",
          workspace_days: float | None = None, workspace_mb: float | None = None,
          workspace_uploads: int | None = None) -> None:
    """Build the page, start the warm-up and serve until stopped (what `app` and `python app.py` run)."""
    try:
        from reranker.ui import AppState, build_demo, launch_options
        from reranker.ui.login import auth_from
        from reranker.ui.state import warm_up
        from reranker.ui.workspaces import WorkspacePolicy
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in APP_PACKAGES:
            raise ConfigError(f"the app needs {exc.name}, from the app extra: pip install 'rerank-lens[app]'") from None
        raise
    login = auth_from(auth)
    policy = WorkspacePolicy.from_env(idle_days=workspace_days, max_megabytes=workspace_mb, max_uploads=workspace_uploads)
    state = AppState(start_corpus=corpus, policy=policy)
    state.expire()  # workspaces that went idle while the server was down
    # Build the page before the warm-up thread starts: two threads importing the same modules at once
    # can hit Python's import-lock deadlock detection.
    demo = build_demo(state)
    warm_up(state)
    logging.getLogger(__name__).info("workspaces: %s under %s%s", policy, state.upload_dir, "; login required" if login else "")
    demo.launch(server_name=host, server_port=port, auth=login, root_path=root_path or None,
                auth_message="Rerank Lens: log in; your uploads and grades follow your user name." if login else None,
                **launch_options())


def run(args: argparse.Namespace) -> int:
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own startup requests
    serve(args.host, args.port, corpus=args.corpus, auth=args.auth, root_path=args.root_path,
          workspace_days=args.workspace_days, workspace_mb=args.workspace_mb, workspace_uploads=args.workspace_uploads)
    return 0


COMMAND = Command("app", "start the Gradio app in the browser (needs the [app] extra)", add_arguments, run)
