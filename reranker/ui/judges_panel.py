"""The Evaluate tab's "Judges' agreement" section: Krippendorff's alpha between the people who graded the corpus
(`reranker.judge_agreement`), per corpus, with the pairs they disagree on first.

`agreement_view` is plain and tested directly; `build_agreement_section` only wires widgets, and the Evaluate tab
calls it from inside its tab.
"""

from __future__ import annotations

import gradio as gr

from reranker.judge_agreement import agreement_html, agreement_report
from reranker.ui.context import PRIVATE, AppContext
from reranker.ui.settings import user_errors
from reranker.ui.state import AppState

SHOWN_PAIRS = 10


def agreement_view(state: AppState, corpus_key: str) -> str:
    """The corpus's judges' agreement as the section's HTML ("" without a corpus)."""
    if not corpus_key:
        return ""
    store = state.judgments(corpus_key)
    queries = {**store.texts(), **state.shipped_dataset(corpus_key).queries}
    return agreement_html(agreement_report(store.current(), queries), limit=SHOWN_PAIRS)


def build_agreement_section(ctx: AppContext) -> None:
    """A closed accordion with the agreement, refreshed when the corpus changes and on its button."""
    with gr.Accordion("Judges' agreement", open=False, elem_id="rl-eval-judges-box"):
        box = gr.HTML(elem_id="rl-eval-judges")
        refresh = gr.Button("Refresh", size="sm", elem_id="rl-eval-judges-refresh")

    @user_errors
    def on_refresh(corpus_key):
        return agreement_view(ctx.state, corpus_key)

    refresh.click(on_refresh, ctx.corpus, box, api_name="judges_agreement")
    ctx.corpus.change(on_refresh, ctx.corpus, box, api_visibility=PRIVATE)
