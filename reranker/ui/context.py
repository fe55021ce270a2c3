"""What every tab builder gets: the shared state, the page's shared widgets and the hooks to wire events.

A tab is a function `build_<name>_tab(ctx: AppContext) -> None` in its own module (`search_tab`,
`chunks_tab`, `compare_tab`, `evaluate_tab`): it creates its widgets inside `tab(...)`, wraps its handlers
(plain view functions over `ctx.state`) in `settings.user_errors`, and wires them. `layout.build_demo`
builds the page around the tabs and wires what spans several of them (the search, deep links, picking a
document in one list to open it in another tab).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gradio as gr
from gradio.components import Component

from reranker.ui.state import AppState

PRIVATE = "private"  # page-only events: not in the API docs, not callable by API clients

Handler = Callable[..., Any]
C = TypeVar("C", bound=Component)
CorpusAndQuery = Callable[..., tuple[str, str]]


@dataclass(frozen=True)
class FollowUp:
    """An event run after every successful search (e.g. scoring the picked document's windows)."""

    fn: Handler
    inputs: list[Component]
    outputs: list[Component]
    js: str | None = None  # run in the browser first; its return value becomes the inputs


@dataclass(frozen=True)
class SearchFill:
    """A component of another tab that every search updates: `fill(view)` is its update."""

    component: Component
    fill: Callable[[Any], Any]


@dataclass(frozen=True)
class SearchLink:
    """An event that opens the Search tab on a corpus and a query, then searches."""

    trigger: Callable[..., Any]  # e.g. `table.select`
    fn: CorpusAndQuery  # fn(*inputs) -> (corpus key, query)
    inputs: list[Component]


@dataclass
class AppContext:
    """The shared state and widgets, and what the tabs register for the page to wire.

    `settings` are the settings widgets in `settings.SETTING_FIELDS` order. The Search tab sets
    `search` (the handler), `search_outputs` and `opening` (what the page runs when it opens: the query
    in the box, i.e. the seed query or a deep link's). Every handler returns its updates keyed by component,
    never by position; other tabs may show part of each search (`fill_from_search`), follow-ups
    run after it, lists whose row clicks pick a document, and links that open Search.
    """

    state: AppState
    corpus: gr.Dropdown
    query: gr.Textbox
    settings: list[Component]
    tabs: gr.Tabs
    search: Handler | None = None
    search_outputs: list[Component] = field(default_factory=list)
    search_fills: list[SearchFill] = field(default_factory=list)  # what other tabs show of every search
    opening: Handler | None = None  # same inputs and outputs as `search`
    after_search: list[FollowUp] = field(default_factory=list)
    doc_lists: list[gr.HTML] = field(default_factory=list)  # lists whose row clicks pick a document
    doc_picker: gr.Dropdown | None = None  # where a picked document goes (the Chunks tab)
    links: list[SearchLink] = field(default_factory=list)
    search_tab_id: str = "search"
    judge_name: gr.Textbox | None = None  # the judge's name every grade is saved with

    @property
    def inputs(self) -> list[Component]:
        """The search's inputs: corpus, query, then every setting."""
        return [self.corpus, self.query, *self.settings]

    def show_query(self, corpus_key: str, query: str) -> dict[Component, Any]:
        """Updates, keyed by component, that select the Search tab with a corpus and a query."""
        return {
            self.tabs: gr.update(selected=self.search_tab_id),
            self.corpus: gr.update(value=corpus_key),
            self.query: gr.update(value=query),
        }

    def fill_from_search(self, component: Component, fill: Callable[[Any], Any]) -> None:
        """Show part of every search's answer in `component` (another tab's): `fill(view)` gives its update
        from the Search tab's `SearchView`. The search returns its updates keyed by component, so a tab
        added or removed never shifts another tab's outputs."""
        self.search_fills.append(SearchFill(component, fill))
        self.search_outputs.append(component)

    def link_to_search(self, trigger: Callable[..., Any], fn: CorpusAndQuery, inputs: list[Component]) -> None:
        """Make an event open Search and run it: `trigger` is e.g. `table.select`, `fn(*inputs)` returns
        (corpus key, query). Wired once every tab is built, since the search outputs span tabs."""
        self.links.append(SearchLink(trigger, fn, inputs))

    def chain_after_search(self, event: Any, *, always: bool = False) -> Any:
        """Chain every follow-up after `event`: once it succeeds, or with `always` once it ends. Returns the last event."""
        for follow in self.after_search:
            step = event.then if always else event.success
            event = step(
                follow.fn, follow.inputs, follow.outputs, js=follow.js, api_visibility=PRIVATE, show_progress="hidden"
            )
        return event


TabBuilder = Callable[[AppContext], None]


def describe(component: C, text: str) -> C:
    """Say what `component`'s value means to API clients, whichever endpoint takes it as an input.

    `gradio_client`'s `view_api()` prints it after the parameter's name and type, and the page's "Use via
    API" docs show it: Gradio reads a parameter's description from the component's input schema
    (`additional_description`), which its own components leave empty. The label stays what the page shows.
    """
    schema = component.api_info_as_input

    def described() -> dict[str, Any]:
        return {**schema(), "additional_description": text}

    component.api_info_as_input = described  # type: ignore[method-assign]
    return component


def help_text(text: str) -> gr.Markdown:
    """A short explanation in the page's muted help style."""
    return gr.Markdown(text, elem_classes=["rl-help"])


@contextmanager
def tab(label: str, tab_id: str, help: str | None = None) -> Iterator[gr.Tab]:
    """A tab of the page; with `help`, it opens with that explanation."""
    with gr.Tab(label, id=tab_id) as opened:
        if help:
            help_text(help)
        yield opened
