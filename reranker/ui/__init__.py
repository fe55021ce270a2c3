"""The Gradio app: layout, thin callbacks, plotly figures and HTML rendering of pipeline results."""

from __future__ import annotations

from reranker.ui.layout import DEFAULT_TABS, AppContext, build_demo, launch_options
from reranker.ui.state import AppState

__all__ = ["DEFAULT_TABS", "AppContext", "AppState", "build_demo", "launch_options"]
