"""Rerank Lens in the browser: `python app.py`, then open http://127.0.0.1:7860.

Set GRADIO_SERVER_NAME=0.0.0.0 to listen on every interface and GRADIO_SERVER_PORT to change the port.
"""

from __future__ import annotations

import logging
import os

from reranker.ui import AppState, build_demo, launch_options
from reranker.ui.state import warm_up

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own startup requests
    state = AppState()
    # Build the page first: two threads importing the same modules at once (plotly's lazy imports here,
    # torch and friends in the warm-up) can hit Python's import-lock deadlock detection and crash the start.
    demo = build_demo(state)
    warm_up(state)  # index the default corpus and load the default cross-encoder while the server starts
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **launch_options(),
    )
