"""Rerank Lens in the browser: `python app.py`, then open http://127.0.0.1:7860.

Set GRADIO_SERVER_NAME=0.0.0.0 to listen on every interface and GRADIO_SERVER_PORT to change the port;
RERANK_LENS_AUTH names a login file, and the RERANK_LENS_WORKSPACE_* variables set each visitor's limits
(docs/app.md). `rerank-lens app --help` lists the same settings as options.
"""

from __future__ import annotations

import logging
import os

from reranker.commands.app import serve

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own startup requests
    serve(os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
          root_path=os.environ.get("GRADIO_ROOT_PATH", ""))
