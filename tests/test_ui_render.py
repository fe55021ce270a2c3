"""HTML rendering and plotly figures as plain functions, on hand-built results (no models)."""

from __future__ import annotations

import re

import pytest

from reranker.corpus import build_corpus
from reranker.explain import Explanation, SpanContribution, sentence_spans
from reranker.types import ChunkScore, Document, Hit, PipelineResult, RankedList, StageTiming
from reranker.ui import figures, render

DOCS = (
    Document("a", "Alpha text about attention.", "Alpha"),
    Document("b", "Bravo text <script>alert(1)</script> & more.", "Bravo <b>bold</b>"),
    Document("c", "Charlie text.", "Charlie"),
    Document("d", "Delta text.", "Delta"),
    Document("e", "Echo text.", "Echo"),
)
CORPUS = build_corpus(DOCS, name="tiny")


def ranked(stage: str, ids: list[str], label: str = "score", normalized: bool = False) -> RankedList:
    hits = tuple(
        Hit(d, r, 10.0 - r, stage, normalized=(0.9 - r / 10) if normalized else None) for r, d in enumerate(ids, start=1)
    )
    return RankedList(stage, hits, label, "sigmoid label" if normalized else None)


def result(top_n: int = 3) -> PipelineResult:
    stages = {
        "bm25": ranked("bm25", ["a", "b", "c", "d"]),
        "dense": ranked("dense", ["b", "a", "e"]),
        "fused": ranked("fused", ["a", "b", "c", "d", "e"], "RRF label"),
        # a 1 → 3 (down 2), b 2 → 2 (same), c 3 → dropped (now 4), e 5 → 1 (new)
        "reranked": ranked("reranked", ["e", "b", "a", "c"], "logit label", normalized=True),
    }
    timings = (
        StageTiming("bm25", 1.5),
        StageTiming("dense", 20.0),
        StageTiming("fused", 0.2),
        StageTiming("reranked", 150.0, load_ms=900.0, detail="model x"),
    )
    return PipelineResult("attention", stages, timings, ("a note <i>",), top_n)


def rows(html: str, side: str) -> list[tuple[str, str]]:
    """(doc id, move badge text) per row of one column."""
    column = html.split(f'rl-col-{side}"', 1)[1].split("</table>", 1)[0]
    return [
        (doc, re.sub(r"<[^>]+>", "", move))
        for doc, move in re.findall(r'data-doc="([^"]+)".*?<td class="rl-move">(.*?)</td></tr>', column)
    ]


def test_grading_marks_unjudged_rows_and_presses_the_current_grade():
    html = render.before_after_html(result(), CORPUS, judgments={"e": 2, "a": 0}, grading=True, mine={"e"})
    assert html.count("? unjudged") == 3  # b, c before; b after (e and a are judged, a as 0)
    assert html.count('class="rl-grades"') == 6
    row_e = re.search(r'<tr class="[^"]*" data-doc="e" data-grade="2"[^>]*>.*?</tr>', html).group(0)
    assert "✓ rel 2 ✎" in row_e and 'class="rl-grade rl-on" data-grade="3"' not in row_e
    assert 'class="rl-grade rl-on" data-grade="2" aria-pressed="true"' in row_e
    assert "✗ judged 0" in html and "rl-unjudged-row" in html
    bar = render.judging_bar_html('v"<x>', 3, 5, 3, 1)
    assert 'data-view="v&quot;&lt;x&gt;"' in bar and "3 of 5</b>" in bar and "1 judgment made here" in bar
    assert "all 5</b>" in render.judging_bar_html("v", 0, 5, 3, 0)
    plain = render.before_after_html(result(), CORPUS, judgments={"e": 2})
    assert "rl-grade" not in plain and "unjudged" not in plain  # snapshot-style lists stay as they were


def test_only_a_grade_made_here_can_be_removed_and_its_row_names_the_shipped_grade_that_returns():
    html = render.before_after_html(
        result(), CORPUS, judgments={"e": 2, "a": 0, "b": 1}, grading=True, mine={"e", "a"}, shipped={"a": 3, "b": 1}
    )
    row = {doc: re.search(rf'<tr [^>]*data-doc="{doc}"[^>]*>.*?</tr>', html).group(0) for doc in "abe"}
    assert 'data-mine="1"' in row["e"] and "data-shipped" not in row["e"]
    assert 'class="rl-ungrade"' in row["e"] and "the document is unjudged again" in row["e"]
    assert 'data-mine="1" data-shipped="3"' in row["a"] and "the corpus's grade 3 applies again" in row["a"]
    assert "judged here over the corpus's grade 3" in row["a"]
    # A shipped grade cannot be removed (the shipped qrels are never rewritten), only overridden.
    assert 'data-mine=""' in row["b"] and "rl-ungrade" not in row["b"] and "never rewritten" in row["b"]
    assert "Backspace" in render.JUDGE_JS and "remove: true" in render.JUDGE_JS


def test_before_after_movements_and_escaping():
    html = render.before_after_html(result(), CORPUS, judgments={"e": 2, "a": 0})
    assert rows(html, "before") == [("a", "→ #3"), ("b", "→ #2"), ("c", "✖ dropped")]
    assert rows(html, "after") == [("e", "★ new (was 5)"), ("b", "="), ("a", "▼ 2")]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Bravo &lt;b&gt;bold&lt;/b&gt;" in html
    assert "✓ rel 2" in html and "judged 0" in html
    assert "Score: RRF label" in html and "Score: logit label" in html


def test_normalized_scores_switch_value_unit_and_caption():
    raw = render.before_after_html(result(), CORPUS)
    norm = render.before_after_html(result(), CORPUS, normalized=True)
    assert "<th>logit</th>" in raw and "<th>sigmoid, 0–1</th>" in norm
    assert "Score: sigmoid label" in norm
    assert ">9.000<" in raw and ">0.800<" in norm  # e at rank 1: raw 9.0, normalized 0.8


def test_summary_counts_moves_and_shows_ndcg():
    html = render.summary_html(result(), corpus_label="tiny <x>", ndcg=(0.5, 0.75), judged=2)
    assert "1 up" not in html and "0 up" in html and "1 down" in html and "1 new" in html
    assert "0.500 → " in html and "+0.250" in html and "tiny &lt;x&gt;" in html
    assert "first model load" in html  # 900 ms load shown apart from the 171.7 ms of the query
    assert "no judgments" in render.summary_html(result(), corpus_label="t")


def test_side_by_side_says_rank_in_other_list():
    left = ranked("reranked", ["a", "b", "c"])
    right = ranked("reranked", ["b", "a", "e"])
    html = render.side_by_side_html(("A: m1", left), ("B: m2", right), CORPUS, 3)
    assert rows(html, "a") == [("a", "#2 there"), ("b", "#1 there"), ("c", "not in other")]


def test_messages_are_escaped():
    assert "&lt;i&gt;" in render.messages_html(["a note <i>"])
    assert render.messages_html([]) == ""


def test_chunk_text_marks_deciding_window_and_cut():
    doc = Document("x", "0123456789" * 10, "")
    chunks = (ChunkScore(0, 0, 40, 0.1, 0, 8), ChunkScore(1, 30, 70, 2.0, 6, 14), ChunkScore(2, 60, 100, -1.0, 12, 20))
    html = render.chunk_text_html(doc, chunks, 1, 55)
    plain = re.sub(r"<span class=\"rl-(deciding-tag|cut)\"[^>]*>.*?</span>", "", html)
    assert re.sub(r"<[^>]+>", "", plain) == doc.full_text  # nothing lost or duplicated
    assert "window 2 decided" in html and "✂" in html
    assert html.index("window 2 decided") < html.index("✂")
    assert '<span class="rl-deciding rl-unread">' in html  # 55..70: deciding and past the cut
    assert render.chunk_text_html(doc, chunks, 0, None).count("✂") == 0


def hand_explanation(doc: Document, deltas: list[float], window: ChunkScore) -> Explanation:
    """An occlusion explanation of `doc.full_text` with the given contribution per sentence (no model)."""
    text = doc.full_text
    pairs = enumerate(zip(sentence_spans(text), deltas, strict=True))
    spans = tuple(SpanContribution(s, e, text[s:e], d, i, i + 1) for i, ((s, e), d) in pairs)
    return Explanation("q", text, "m", "occlusion", "sentence", 1.5, window, 1, True, spans, len(spans) + 1, 12.0, len(spans))


def test_explanation_heat_is_escaped_coloured_by_sign_and_the_legend_writes_the_unit_out():
    doc = Document("h", "Intro <b>bold</b> text. The answer is <script>x</script> here. Outro & end.", "T")
    window = ChunkScore(0, 0, len(doc.full_text), 1.5, 0, 30)
    explanation = hand_explanation(doc, [0.1, -0.5, 2.0, 0.0], window)
    html = render.chunk_text_html(doc, [window], 0, None, explanation)
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html and "<b>" not in html
    plain = re.sub(r"<span class=\"rl-deciding-tag\"[^>]*>.*?</span>", "", html)
    assert re.sub(r"<[^>]+>", "", plain) == render.esc(doc.full_text)  # nothing lost or duplicated
    heat = re.findall(
        r'class="rl-deciding rl-heat rl-heat-(pos|neg)"(?: style="background-color: rgba\((\d+), \d+, \d+, ([\d.]+)\)")? '
        r'title="([^"]+)">([^<]*)<',
        html,
    )
    # opacity relative to the largest (2.0); a span with no effect keeps the deciding window's own background
    assert [(sign, red, alpha) for sign, red, alpha, _, _ in heat] == [
        ("pos", "22", "0.13"), ("neg", "220", "0.25"), ("pos", "22", "0.70"), ("pos", "", "")
    ]
    assert '<div class="rl-doctext rl-explained">' in html
    assert heat[2][3] == "+2.000 logit change (occlusion)" and heat[2][4].startswith("The answer is &lt;script&gt;")
    legend = render.explanation_legend_html(explanation)
    assert "Why window 1 scored logit +1.500" in legend and "heat per sentence: logit change: the window" in legend
    assert "(-0.500)" in legend and "(+2.000 logit change)" in legend and "one forward pass" in legend
    assert "Largest: “The answer is &lt;script&gt;x&lt;/script&gt; here.” +2.000" in legend
    other = Document("o", "A different text.", "")
    assert "rl-heat" not in render.chunk_text_html(other, [window], 0, None, explanation)  # explains another text


def test_rank_journey_has_one_line_per_top_document():
    fig = figures.rank_journey(result(), CORPUS, top=3)
    assert next(t.x for t in fig.data) == ("BM25", "Dense (bi-encoder)", "Fused (RRF)", "Cross-encoder")
    first = fig.data[0]  # e: absent from bm25, rank 3 dense, 5 fused, 1 reranked
    assert first.customdata == ("not retrieved", "#3", "#5", "#1")
    assert first.y[1:] == (3, 5, 1) and first.y[0] > 5
    assert fig.layout.yaxis.autorange == "reversed" and "not retrieved" in fig.layout.yaxis.ticktext


def test_figure_labels_show_corpus_tags_as_text():
    fig = figures.rank_journey(result(), CORPUS, top=3)
    assert fig.data[1].name == "2. Bravo &lt;b&gt;bold&lt;/b&gt;"
    chunk = figures.chunk_scores_figure((ChunkScore(0, 0, 5, 1.0, 0, 2),), 0, None, title='<a href="x">t</a>')
    assert chunk.layout.title.text == '&lt;a href="x"&gt;t&lt;/a&gt;'


def test_latency_bars_have_ms_labels_and_separate_first_load():
    fig = figures.latency_figure(result().timings, [StageTiming("dense index", 0.0, 2500.0)])
    query, load = fig.data
    assert query.name == "this query" and list(query.text) == ["1.5 ms", "20 ms", "0.2 ms", "150 ms"]
    assert list(load.y) == ["dense index — first load", "Cross-encoder — first load"]
    assert list(load.text) == ["2.50 s", "900 ms"]
    assert "172 ms" in fig.layout.title.text


def test_chunk_figure_highlights_deciding_window_and_truncation():
    chunks = (ChunkScore(0, 0, 40, 0.1, 0, 8), ChunkScore(1, 30, 70, 2.0, 6, 14), ChunkScore(2, 60, 100, -1.0, 12, 20))
    fig = figures.chunk_scores_figure(chunks, 1, 50, title="t")
    bar = fig.data[0]
    assert list(bar.y) == [0.1, 2.0, -1.0]
    assert bar.marker.color[1] == figures.ACCENT and bar.marker.color[0] != figures.ACCENT
    [line] = [s for s in fig.layout.shapes if s.type == "line"]
    assert 0.5 < line.x0 < 1.5  # inside the second window's bar
    norm = figures.chunk_scores_figure(chunks, 1, None, title="t", normalized=True)
    assert norm.data[0].y[1] == pytest.approx(0.8808, abs=1e-3) and not norm.layout.shapes


def test_model_latency_and_empty_figures():
    fig = figures.model_latency_figure([("m1", 120.0, 800.0, "10 docs"), ("m2", 40.0, 0.0, "10 docs, 4 from cache")])
    assert list(fig.data[0].text) == ["120 ms", "40 ms"] and fig.data[1].name.startswith("first load")
    assert figures.empty_figure("nothing").layout.annotations[0].text == "nothing"
