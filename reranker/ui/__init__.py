"""The Gradio app: the page (`layout`), one module per tab (`search_tab`, `chunks_tab`, `compare_tab`,
`evaluate_tab`), the settings they share (`settings`), what tab builders get (`context`), the
corpora and pipelines (`state`), plotly figures (`figures`) and HTML rendering (`render`)."""

from __future__ import annotations

from reranker.ui.context import AppContext
from reranker.ui.layout import DEFAULT_TABS, build_demo, launch_options
from reranker.ui.state import AppState

__all__ = ["DEFAULT_TABS", "AppContext", "AppState", "build_demo", "launch_options"]
