"""The Search, Chunks and Compare tabs' views as plain functions on a small corpus with the bundled MiniLM
(bi-encoder, and as an untrained-head cross-encoder for mechanics): what each view shows, how the
settings widgets' values are read, and how errors reach the page."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import typing

import gradio as gr
import pytest

from reranker.errors import ConfigError
from reranker.judgments import new_query_id
from reranker.ui import settings as ui_settings
from reranker.ui.chunks_tab import chunk_view
from reranker.ui.compare_tab import compare_view
from reranker.ui.search_tab import (
    PREPARING,
    TYPE_A_QUERY,
    JudgmentDownloads,
    SearchPanels,
    grade_handler,
    grade_view,
    judgment_files,
    opening_handler,
    pipeline_for,
    search_handler,
    search_view,
)
from reranker.ui.settings import Settings, named_settings, settings_from, user_errors
from reranker.ui.state import SEED_QUERY, AppState
from tests.conftest import BUNDLED_MODEL
from tests.support import write_topics

LONG = " ".join(f"Paragraph {i} discusses harbour logistics, cranes and container schedules in detail." for i in range(70))
LONG += " The transformer attention mechanism also appears here once, near the end."
KEY = "bundled:knowledge"
CROSS = Settings(cross_encoder=BUNDLED_MODEL, chunk_tokens=64, chunk_overlap=16, top_n=5)
PANELS = SearchPanels("summary", "notes", "lists", "journey", "latency")  # the handlers' updates, keyed by these


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    folder = write_topics(root / "corpora" / "knowledge")
    with open(folder / "corpus.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"_id": "harbour", "title": "Harbour operations", "text": LONG}) + "\n")
    return AppState(bundled_dir=root / "corpora", data_dirs=[], cache_dir=str(root / "emb"))


def after_ids(html: str) -> list[str]:
    return re.findall(r'data-doc="([^"]+)"', html.split('rl-col-after"', 1)[1])


def test_search_without_cross_encoder_ranks_and_scores_the_judged_query(state):
    view = search_view(state, KEY, SEED_QUERY, Settings(cross_encoder="none", top_n=5))
    assert after_ids(view.lists)[0] == "attention"
    assert "no cross-encoder ran" in view.lists
    assert "nDCG@10 1.000 → " in view.summary  # judged query found by its text
    assert next(t.name for t in view.latency.data) == "this query"
    assert {t.y[0] for t in view.latency.data[:1]} <= {"BM25", "Dense (bi-encoder)", "Fused (RRF)"}
    assert view.doc_choices[0][1] == "attention" and any(v == "harbour" for _, v in view.doc_choices)


def test_grading_listed_documents_saves_them_and_moves_ndcg(state, tmp_path, monkeypatch):
    monkeypatch.setattr(state, "judgments_dir", tmp_path)  # this test's judgments only; the module's pipeline
    judging = state
    settings = Settings(cross_encoder="none", top_n=3)
    query = "ocean tides and the moon"
    view = search_view(judging, KEY, query, settings)
    assert "no judgments for this query" in view.summary
    assert view.lists.count("? unjudged") == 6 and "3 of 3</b> documents in the two top 3 lists unjudged" in view.lists
    docs = after_ids(view.lists)
    summary, lists = grade_view(judging, view.view, docs[1], 3)
    first = re.search(r"nDCG@10 ([\d.]+) → <b[^>]*>([\d.]+)", summary).groups()
    assert first[0] == first[1] and float(first[0]) < 1.0  # the only relevant document is second
    assert lists.count("? unjudged") == 4 and 'class="rl-grade rl-on" data-grade="3"' in lists
    summary, lists = grade_view(judging, view.view, docs[0], 2)
    assert re.search(r"nDCG@10 ([\d.]+) → ", summary).group(1) != first[0]
    assert "✓ rel 2 ✎" in lists and "1 of 3</b> documents" in lists
    # Saved: the query searched again (spelled otherwise) shows them, and so does another server on the same
    # judgments folder; the download holds them.
    again = search_view(judging, KEY, query.upper() + "?", settings)
    assert again.lists.count("? unjudged") == 2 and "nDCG@10" in again.summary
    qid = new_query_id(query)
    other = AppState(bundled_dir=state.bundled_dir, data_dirs=[], judgments_dir=tmp_path)
    assert other.dataset(KEY).qrels["test"][qid] == {docs[1]: 3, docs[0]: 2}
    qrels, queries, count = judgment_files(judging, KEY)
    assert count == 2 and f"{qid}\t{docs[1]}\t3" in open(qrels).read() and query in open(queries).read()
    with pytest.raises(ConfigError, match="press Search"):
        grade_view(judging, "no-such-view", docs[0], 1)


def row_of(lists: str, doc: str) -> str:
    return re.search(rf'<tr [^>]*data-doc="{doc}"[^>]*>.*?</tr>', lists.split('rl-col-after"', 1)[1]).group(0)


def test_removing_a_grade_through_the_page_s_handler_brings_back_the_shipped_grade_or_unjudged(
    state, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(state, "judgments_dir", tmp_path)
    # the handler the lists' script triggers, for grades and removals alike
    on_grade = grade_handler(state, PANELS, JudgmentDownloads("qrels", "queries"))

    def send(**data):
        updates = on_grade("Ada", gr.EventData(None, data))  # the judge named in the page
        return updates["summary"], updates["lists"]

    view = search_view(state, KEY, "where do emperor penguins breed", Settings(cross_encoder="none", top_n=3))
    assert after_ids(view.lists)[0] == "penguin" and "nDCG@10 1.000 → " in view.summary  # shipped: penguin 2
    assert "rl-ungrade" not in row_of(view.lists, "penguin")  # a shipped grade cannot be removed, only overridden
    other = after_ids(view.lists)[1]
    summary, lists = send(view=view.view, doc="penguin", grade=0)
    assert "none of the 1 judged documents is relevant yet" in summary
    assert "✗ judged 0 ✎" in row_of(lists, "penguin") and "the corpus's grade 2 applies again" in row_of(lists, "penguin")
    summary, lists = send(view=view.view, doc=other, grade=1)
    assert 'class="rl-ungrade"' in row_of(lists, other)
    capsys.readouterr()

    summary, lists = send(view=view.view, doc="penguin", remove=True)
    assert "nDCG@10 1.000 → " in summary  # the shipped grade 2 counts again, as nDCG shows
    assert "✓ rel 2" in row_of(lists, "penguin") and "✎" not in row_of(lists, "penguin")
    assert "rl-ungrade" not in row_of(lists, "penguin")
    assert "The corpus ships its own grade for penguin (2), which applies again" in capsys.readouterr().out
    summary, lists = send(view=view.view, doc=other, remove=True)
    assert "? unjudged" in row_of(lists, other) and "rl-ungrade" not in row_of(lists, other)
    assert state.judgments(KEY).load().qrels == {}
    with pytest.raises(gr.Error, match="holds no grade of"):
        send(view=view.view, doc=other, remove=True)
    with pytest.raises(gr.Error, match="press Search"):
        send(view="no-such-view", doc=other, remove=True)


def test_search_with_cross_encoder_shows_both_stages_windows_and_normalized_scores(state):
    view = search_view(state, KEY, SEED_QUERY, CROSS)
    assert "After: Cross-encoder" in view.lists and "cross-encoder logit" in view.lists
    journey_stages = view.journey.data[0].x
    assert journey_stages[-1] == "Cross-encoder" and len(view.journey.data) == 5
    normalized = search_view(state, KEY, SEED_QUERY, Settings(**{**CROSS.__dict__, "score_mode": ui_settings.NORMALIZED_MODE}))
    scores = [float(s) for s in re.findall(r'class="rl-score"[^>]*>([-\d.]+)<', normalized.lists.split('rl-col-after"')[1])]
    assert scores and all(0.0 <= s <= 1.0 for s in scores)


def test_chunk_view_of_a_long_document(state):
    view = chunk_view(state, KEY, SEED_QUERY, "harbour", CROSS)
    bars = view.figure.data[0]
    assert len(bars.y) > 5  # ~1,000 tokens in 64-token windows
    deciding = list(bars.marker.color).index("#4f46e5")
    assert bars.y[deciding] == max(bars.y)
    assert f"window {deciding + 1} decided the score" in view.text and "✂" in view.text
    assert "windows of up to 64 tokens" in view.info and "Harbour operations" in view.info


def test_chunk_view_shows_each_sentences_logit_change_as_heat_with_a_legend(state):
    view = chunk_view(state, KEY, SEED_QUERY, "harbour", CROSS)
    assert view.text.index('class="rl-legend"') < view.text.index('class="rl-doctext rl-explained"')
    assert "logit change: the window&#x27;s score minus its score with the sentence removed" in view.text
    heat = re.findall(r'class="rl-deciding[^"]* rl-heat rl-heat-(?:pos|neg)"[^>]*title="([-+][\d.]+) logit change', view.text)
    assert len(heat) >= 3  # every sentence of the 64-token deciding window
    tokens = chunk_view(state, KEY, SEED_QUERY, "harbour", CROSS, explain_mode="tokens")
    assert "heat per token span" in tokens.text and tokens.text.count("rl-heat-") == 64 // 16  # a 64-token window
    gradients = chunk_view(state, KEY, SEED_QUERY, "harbour", CROSS, explain_mode="integrated-gradients")
    assert "integrated gradients" in gradients.text and "[PAD]" in gradients.text
    off = chunk_view(state, KEY, SEED_QUERY, "harbour", CROSS, explain_mode="off")
    assert "rl-heat" not in off.text and "rl-legend" not in off.text and "decided the score" in off.text



def test_the_html_snapshot_explains_the_top_reranked_document(state):
    from pathlib import Path

    from reranker.ui.evaluate_tab import snapshot_file

    page = Path(snapshot_file(state, KEY, SEED_QUERY, CROSS)).read_text(encoding="utf-8")
    assert '<section id="explanation">' in page and 'class="heat"' in page and "logit change" in page
    plain = Path(snapshot_file(state, KEY, SEED_QUERY, Settings(cross_encoder="none"))).read_text(encoding="utf-8")
    assert '<section id="explanation">' not in plain  # nothing was reranked, so nothing to explain


def test_chunk_view_without_a_cross_encoder_explains_itself(state):
    view = chunk_view(state, KEY, SEED_QUERY, "harbour", Settings(cross_encoder="none"))
    assert "No cross-encoder" in view.info and view.text == ""
    with pytest.raises(ConfigError, match="No document with id"):
        chunk_view(state, KEY, SEED_QUERY, "missing-doc", CROSS)


def test_compare_two_cross_encoders_and_two_bi_encoders(state):
    view = compare_view(state, KEY, SEED_QUERY, "Cross-encoders", BUNDLED_MODEL, "all-MiniLM-L6-v2", CROSS)
    assert "+1.000" in view.agreement and "100%" in view.agreement  # the alias names the same weights
    assert "came from the score cache" in view.agreement  # the searches above already scored these windows
    assert view.lists.count("data-doc=") == 10
    assert [r for r in view.latency.data[0].y] == [BUNDLED_MODEL, "all-MiniLM-L6-v2"]
    bi = compare_view(state, KEY, SEED_QUERY, "Bi-encoders", BUNDLED_MODEL, BUNDLED_MODEL, CROSS)
    assert "Kendall τ" in bi.agreement and "A: " + BUNDLED_MODEL in bi.lists


def test_errors_become_gr_errors_with_the_fix_and_no_traceback(state):
    on_search = search_handler(state, PANELS)
    values = [getattr(CROSS, f) for f in ui_settings.SETTING_FIELDS]
    with pytest.raises(gr.Error, match="query is empty"):
        on_search(KEY, "   ", *values, progress=None)
    values[1] = "cross-encoder/ms-marco-electra-base"
    with pytest.raises(gr.Error) as info:
        on_search(KEY, SEED_QUERY, *values, progress=None)
    assert "could not be loaded" in info.value.message and "Fix:" in info.value.message

    @user_errors
    def broken():
        raise KeyError("internal detail")

    with pytest.raises(gr.Error) as info:
        broken()
    assert "internal detail" not in info.value.message and "server" in info.value.message


def test_named_settings_names_each_value_and_passes_progress_and_request_on():
    seen = {}

    @named_settings("configuration")
    @user_errors
    def handler(corpus_key, *rest, progress=None, request: gr.Request = None):
        seen.update(corpus_key=corpus_key, rest=rest, progress=progress, request=request)
        return "done"

    parameters = inspect.signature(handler).parameters
    assert list(parameters) == ["corpus_key", "configuration", *ui_settings.SETTING_FIELDS, "progress", "request"]
    assert {p.kind for p in parameters.values()} == {inspect.Parameter.POSITIONAL_OR_KEYWORD}  # Gradio fills these in
    assert typing.get_type_hints(handler)["request"] is gr.Request  # so Gradio passes the request
    values = [f"v{i}" for i in range(len(ui_settings.SETTING_FIELDS))]
    assert handler("k", "c", *values, "p", "r") == "done"
    assert seen == {"corpus_key": "k", "rest": ("c", *values), "progress": "p", "request": "r"}
    handler(corpus_key="k", configuration="c", **dict(zip(ui_settings.SETTING_FIELDS, values, strict=True)))
    assert seen["rest"] == ("c", *values) and seen["progress"] is None


def test_every_endpoint_that_reports_progress_gets_gradio_progress(state):
    from reranker.ui import build_demo

    events = {fn.api_name: fn for fn in build_demo(state).fns.values() if fn.api_visibility == "public"}
    for name in ("search", "chunks", "compare", "evaluate", "compare_on_query"):
        assert events[name].tracks_progress, name  # a keyword-only progress after *rest was never filled in


def test_the_opening_query_says_what_it_prepares_then_answers(tmp_path):
    import threading

    folder = write_topics(tmp_path / "corpora" / "knowledge")
    cold = AppState(bundled_dir=folder.parent, data_dirs=[], cache_dir=str(tmp_path / "emb"))
    search = search_handler(cold, PANELS)
    on_open = opening_handler(cold, search, "lists")
    values = [getattr(Settings(cross_encoder="none", top_n=5), f) for f in ui_settings.SETTING_FIELDS]

    nothing = list(on_open(KEY, "  ", *values, progress=None))
    assert len(nothing) == 1 and TYPE_A_QUERY in nothing[0]["lists"]  # no query: ask for one, search nothing
    steps = on_open(KEY, SEED_QUERY, *values, progress=None)
    first = next(steps)
    assert PREPARING in first["lists"] and "knowledge (bundled)" in first["lists"]  # nothing built yet
    assert list(first) == ["lists"]  # the other outputs are left as they are
    answer = next(steps)
    assert after_ids(answer["lists"])[0] == "attention" and "nDCG@10" in answer["summary"]
    assert "Searching for the query above" in next(on_open(KEY, SEED_QUERY, *values, progress=None))["lists"]  # warm now

    # While the server's warm-up prepares a corpus, a request says so and waits for it.
    done = cold.mark_warming(KEY)
    said: list[str] = []
    waiter = threading.Thread(target=pipeline_for, args=(cold, KEY, lambda *a, desc="", **k: said.append(desc)))
    waiter.start()
    waiter.join(timeout=1.0)
    assert waiter.is_alive() and PREPARING in said[0]
    done.set()
    waiter.join(timeout=30)
    assert not waiter.is_alive()


def test_settings_parse_from_widget_values():
    values = ("m", "auto", 50.0, 60.0, 20.0, 7.0, 128.0, 32.0, "mean", ui_settings.NORMALIZED_MODE, "0.25", 0)
    settings = settings_from(values)
    assert settings.normalized and settings.overrides()["top_n"] == 7 and settings.overrides()["aggregation"] == "mean"
    assert settings.overrides()["blend"] == 0.25
    assert settings.overrides()["latency_budget_ms"] is None  # 0 in the box means no budget
    assert settings_from((*values[:-1], 800)).overrides()["latency_budget_ms"] == 800.0
    assert Settings().overrides()["blend"] is None  # the default follows the model card
    with pytest.raises(ConfigError, match="blend must be a number"):
        Settings(blend="lots").overrides()


def test_budget_and_blend_from_the_page_reach_the_pipeline(state):
    settings = Settings(cross_encoder=BUNDLED_MODEL, rerank_depth=10, blend="0.5", latency_budget_ms=0.001)
    view = search_view(state, KEY, SEED_QUERY, settings)
    assert "Latency budget" in view.notes
    assert "blend" in view.lists or "z(" in view.lists


def test_settings_defaults_are_the_pipeline_config_but_the_named_override():
    from reranker.pipeline import PipelineConfig

    defaults = PipelineConfig()
    page = dataclasses.replace(defaults, **Settings().overrides())
    assert page == dataclasses.replace(defaults, rerank_depth=ui_settings.INTERACTIVE_RERANK_DEPTH)
    assert ui_settings.INTERACTIVE_RERANK_DEPTH != defaults.rerank_depth  # else the override has no reason to exist
    shared = [f for f in ui_settings.SETTING_FIELDS if hasattr(defaults, f)]
    assert shared == [f for f in ui_settings.SETTING_FIELDS if f not in ui_settings.PAGE_ONLY]  # one name per concept
    written_otherwise = {"rerank_depth", "blend", "latency_budget_ms"}  # the override; a choice and 0 for None
    assert len(shared) == 11 and all(getattr(Settings(), f) == getattr(defaults, f) for f in shared if f not in written_otherwise)
