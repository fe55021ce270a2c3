"""Pure functions from pipeline results to escaped HTML for the page: two ranked lists side by side (each
list drawn by `reranker.ranked_html`, which the snapshot uses too), the judging bar, summary and notes, chunk
text, and the heat of a score explanation over that text; and the page's scripts for the lists.

Every piece of corpus text, document id and file name goes through `html.escape`. Rows carry a
`data-doc` attribute so the page script can highlight one document in every list at once, and grade it.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence

from reranker.corpus import Corpus, Dataset
from reranker.evaluation.compare import movement
from reranker.explain import Explanation, SpanContribution
from reranker.html_text import HEAT_RGB, SNIPPET_CHARS, esc, heat_style, snippet_text  # noqa: F401  (public here too)
from reranker.input_policy import InputNote
from reranker.judgments import GRADE_NAMES, GRADES
from reranker.ranked_html import (  # noqa: F401  (public here too: the page's modules and tests read them from render)
    Column,
    badge,
    format_score,
    grade_controls,
    hit_score,
    ranked_table,
    relevance_mark,
    score_caption,
    score_unit,
    snippet,
    title_of,
    unjudged_mark,
)
from reranker.types import ChunkScore, Document, PipelineResult, RankedList

STAGE_NAMES = {
    "bm25": "BM25",
    "dense": "Dense (bi-encoder)",
    "fused": "Fused (RRF)",
    "coarse": "Coarse cross-encoder",
    "reranked": "Cross-encoder",
    "run": "Uploaded run",
}


# Hover a row to highlight the document in every list of the component; click to pin it. Goes with the
# `data-doc` rows of `ranked_table` as a gr.HTML's `js_on_load`.
DOC_LIST_JS = """
const rows = () => element.querySelectorAll('tr[data-doc]');
const mark = (doc, cls) => rows().forEach(r => r.classList.toggle(cls, doc !== null && r.dataset.doc === doc));
element.addEventListener('mouseover', e => {
  const r = e.target.closest('tr[data-doc]');
  mark(r ? r.dataset.doc : null, 'rl-hover');
});
element.addEventListener('mouseleave', () => mark(null, 'rl-hover'));
element.addEventListener('click', e => {
  const r = e.target.closest('tr[data-doc]');
  if (!r || e.target.closest('.rl-grades')) return;  // a grade button grades (× removes); it does not pin
  const pin = !r.classList.contains('rl-selected');
  mark(pin ? r.dataset.doc : null, 'rl-selected');
  if (pin) trigger('click', {doc: r.dataset.doc});  // the server opens this document in the Chunks tab
});
"""


# Grading (goes after DOC_LIST_JS on the Search lists): a click on a grade button, or a key 0-3 while the
# pointer is over a row or a row is pinned (↑/↓ move the pin), marks the row at once and sends
# {view, doc, grade} as the component's `submit` event; the server saves it and sends the lists back.
# × or Backspace/Delete on a row graded here (data-mine) sends {view, doc, remove: true} the same way; the
# row shows the corpus's shipped grade (data-shipped) again, or unjudged.
JUDGE_JS = """
let cursor = null;  // the pinned row, {doc, side}: keys grade it
const sideOf = r => ((r.closest('.rl-col') || {}).className || '').replace(/.*rl-col-(\\w+).*/, '$1');
const rowOf = (doc, side) => [...element.querySelectorAll('.rl-col-' + side + ' tr[data-doc]')].find(r => r.dataset.doc === doc);
const viewOf = () => (element.querySelector('[data-view]') || {dataset: {}}).dataset.view;
const press = (doc, value, mine) => rows().forEach(r => {
  if (r.dataset.doc !== doc) return;
  r.classList.toggle('rl-unjudged-row', value === '');
  r.dataset.grade = value;
  r.dataset.mine = mine ? '1' : '';
  r.querySelectorAll('.rl-grade').forEach(b => {
    const on = b.dataset.grade === value;
    b.classList.toggle('rl-on', on);
    b.setAttribute('aria-pressed', String(on));
  });
  if (!mine) r.querySelectorAll('.rl-ungrade').forEach(b => b.remove());
});
const grade = (doc, value) => {
  const view = viewOf();
  if (!view || doc == null) return;
  press(doc, String(value), true);
  trigger('submit', {view: view, doc: doc, grade: Number(value)});
};
const ungrade = row => {
  const view = viewOf();
  if (!view || row.dataset.mine !== '1') return;  // only a grade made here can be removed
  press(row.dataset.doc, row.dataset.shipped || '', false);
  trigger('submit', {view: view, doc: row.dataset.doc, remove: true});
};
element.addEventListener('click', e => {
  const clear = e.target.closest('.rl-ungrade');
  if (clear) { ungrade(clear.closest('tr[data-doc]')); return; }
  const button = e.target.closest('.rl-grade');
  if (button) { grade(button.closest('tr[data-doc]').dataset.doc, button.dataset.grade); return; }
  const r = e.target.closest('tr[data-doc]');
  if (r) cursor = r.classList.contains('rl-selected') ? {doc: r.dataset.doc, side: sideOf(r)} : null;
});
const current = () => (cursor && rowOf(cursor.doc, cursor.side)) || element.querySelector('tr[data-doc]:hover');
document.addEventListener('keydown', e => {
  if (e.ctrlKey || e.metaKey || e.altKey || !element.offsetParent) return;
  if (e.target.closest && e.target.closest('input, textarea, select, [contenteditable]')) return;
  const row = current();
  if (!row) return;
  if (e.key.length === 1 && '0123'.includes(e.key)) {
    e.preventDefault();
    grade(row.dataset.doc, e.key);
  } else if (e.key === 'Backspace' || e.key === 'Delete') {
    e.preventDefault();
    ungrade(row);
  } else if (cursor && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
    const next = e.key === 'ArrowDown' ? row.nextElementSibling : row.previousElementSibling;
    if (!next || !next.dataset.doc) return;
    e.preventDefault();
    cursor = {doc: next.dataset.doc, side: cursor.side};
    mark(cursor.doc, 'rl-selected');
    next.scrollIntoView({block: 'nearest'});
  }
});
if (typeof watch === 'function') watch('value', () => {  // the lists came back: keep the pin
  if (cursor && !rowOf(cursor.doc, cursor.side)) cursor = null;
  mark(cursor ? cursor.doc : null, 'rl-selected');
});
"""


def shorten(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stage_name(stage: str) -> str:
    return STAGE_NAMES.get(stage, stage)


def judging_bar_html(view: str, unjudged: int, shown: int, top_n: int, overlay: int) -> str:
    """What is left to judge in the two lists, how to grade, and how many judgments this corpus's overlay holds."""
    scale = " · ".join(f"{g} {GRADE_NAMES[g]}" for g in GRADES)
    left = (
        f'<b class="rl-unjudged-count">{unjudged} of {shown}</b> documents in the two top {top_n} lists unjudged'
        if unjudged
        else f'<b class="rl-judged-all">all {shown}</b> documents in the two top {top_n} lists judged'
    )
    mine = f"{overlay} judgment{'s' if overlay != 1 else ''} made here for this corpus"
    return (
        f'<div class="rl-judge-bar" data-view="{esc(view)}"><span>{left}</span>'
        f'<span class="rl-muted">Grade: click {scale}; or point at a row (or pin it) and press 0–3; '
        '× or Backspace removes a grade made here.</span>'
        f'<span class="rl-overlay-count">{esc(mine)}</span></div>'
    )


def before_after_html(
    result: PipelineResult,
    corpus: Corpus,
    *,
    normalized: bool = False,
    judgments: Mapping[str, int] | None = None,
    after_heading: str | None = None,
    grading: bool = False,
    mine: Collection[str] = (),
    shipped: Mapping[str, int] | None = None,
    before_heading: str | None = None,
) -> str:
    """The list before reranking (fused, or the first-stage list reranking started from) and the final list side
    by side (with `grading`, rows carry grade controls: see `ranked_table`)."""
    top_n = result.top_n
    before = Column(before_heading or f"Before: {stage_name(result.before.stage)}", result.before, result.after, "before")
    heading = after_heading or (
        f"After: {stage_name(result.final_stage)}"
        if result.reranked
        else f"After: no cross-encoder ran (same as {'fused' if result.before.stage == 'fused' else 'before'})"
    )
    after = Column(heading, result.after, result.before, "after")
    return (
        input_note_html(result.input_note)
        + '<div class="rl-lists">'
        + ranked_table(before, corpus, top_n, normalized=normalized, judgments=judgments, grading=grading, mine=mine,
                       shipped=shipped)
        + ranked_table(after, corpus, top_n, normalized=normalized, judgments=judgments, grading=grading, mine=mine,
                       shipped=shipped)
        + "</div>"
    )


def side_by_side_html(
    left: tuple[str, RankedList], right: tuple[str, RankedList], corpus: Corpus, top_n: int, *, normalized: bool = False
) -> str:
    """Two models' lists for the same query; each row says the document's rank in the other list."""
    a = Column(left[0], left[1], right[1], "a")
    b = Column(right[0], right[1], left[1], "b")
    return (
        '<div class="rl-lists">'
        + ranked_table(a, corpus, top_n, normalized=normalized)
        + ranked_table(b, corpus, top_n, normalized=normalized)
        + "</div>"
    )


def summary_html(
    result: PipelineResult,
    *,
    corpus_label: str,
    ndcg: tuple[float, float] | None = None,
    judged: int | None = None,
    models: str = "",
) -> str:
    """A one-line summary: corpus, how many documents moved, nDCG@10 before → after when judged."""
    top_n = result.top_n
    moves = [movement(d, result.before, result.after, top_n) for d in result.after.doc_ids()[:top_n]]
    up = sum(m.kind == "up" for m in moves)
    down = sum(m.kind == "down" for m in moves)
    new = sum(m.kind == "new" for m in moves)
    parts = [
        f"<span><b>{esc(corpus_label)}</b></span>",
        *([f"<span class='rl-models' title='bi-encoder → cross-encoder'>{esc(models)}</span>"] if models else []),
        f"<span>top {top_n}: <b class='rl-up-t'>{up} up</b>, <b class='rl-down-t'>{down} down</b>, "
        f"<b class='rl-new-t'>{new} new</b></span>",
        _time_summary(result),
    ]
    if ndcg is not None:
        before, after = ndcg
        delta = after - before
        cls = "rl-up-t" if delta > 0.0005 else ("rl-down-t" if delta < -0.0005 else "")
        documents = "document" if judged == 1 else "documents"
        parts.append(
            f'<span title="nDCG@10 of this query against its relevance judgments ({judged} judged {documents}); '
            f'0 to 1, higher is better">nDCG@10 {before:.3f} → <b class="{cls}">{after:.3f}</b> '
            f"({delta:+.3f})</span>"
        )
    elif judged:
        parts.append(
            f'<span class="rl-muted" title="nDCG needs at least one document graded 1–3">nDCG@10: none of the {judged} '
            "judged documents is relevant yet</span>"
        )
    else:
        parts.append(
            '<span class="rl-muted" title="grade documents below, or pick one of the example queries, to see nDCG">'
            "no judgments for this query</span>"
        )
    return '<div class="rl-summary">' + "".join(parts) + "</div>"


def _time_summary(result: PipelineResult) -> str:
    query_ms = sum(t.ms for t in result.timings)
    load_ms = sum(t.load_ms for t in result.timings)
    text = f"<span title='wall clock of every stage for this query'>{query_ms:,.0f} ms for this query"
    if load_ms:
        text += f" <span class='rl-muted'>+ {load_ms:,.0f} ms first model load</span>"
    return text + "</span>"


def input_note_html(note: InputNote | None) -> str:
    """How a long query was laid out for the cross-encoder (what was cut, the windows, the blend), above the lists."""
    if note is None:
        return ""
    return f'<div class="rl-notes rl-input-note" title="reranker.input_policy">{esc(note.text)}</div>'


def messages_html(messages: Sequence[str]) -> str:
    if not messages:
        return ""
    items = "".join(f"<li>{esc(m)}</li>" for m in messages)
    return f'<div class="rl-notes"><ul>{items}</ul></div>'


def corpus_info_html(dataset: Dataset, run: str | None = None) -> str:
    """Documents, queries and which splits carry relevance judgments; `run` says what an uploaded run replaces."""
    judged = sum(len(q) for q in dataset.qrels.values())
    parts = [f"<b>{len(dataset.corpus):,}</b> documents"]
    if dataset.queries:
        parts.append(f"<b>{len(dataset.queries):,}</b> queries")
    if judged:
        parts.append(f"relevance judgments for <b>{judged:,}</b> queries ({esc(', '.join(sorted(dataset.qrels)))})")
    else:
        parts.append("no relevance judgments")
    if run:
        parts.append(f'<span class="rl-run-info">{esc(run)}</span>')
    return '<div class="rl-corpus-info">' + " · ".join(parts) + "</div>"


def notice_html(text: str, kind: str = "info") -> str:
    return f'<div class="rl-notice rl-notice-{esc(kind)}">{esc(text)}</div>'


def heat_title(span: SpanContribution, explanation: Explanation) -> str:
    return f"{span.delta:+.3f} {explanation.unit} ({explanation.method})"


def explanation_legend_html(explanation: Explanation) -> str:
    """What the heat means: the window and its score, the unit written out, the scale, the method and its cost."""
    spans = explanation.spans
    low = min((s.delta for s in spans), default=0.0)
    high = max((s.delta for s in spans), default=0.0)
    unit = "sentence" if explanation.granularity == "sentence" else "token span"
    window = explanation.window
    top = explanation.top
    largest = ""
    if top is not None:
        largest = f' Largest: “{esc(shorten(" ".join(top.text.split()), 90))}” {top.delta:+.3f}.'
    return (
        f'<div class="rl-legend" data-method="{esc(explanation.method)}">'
        f"<b>Why window {window.index + 1} scored logit {explanation.score:+.3f}</b> — heat per {esc(unit)}: "
        f"{esc(explanation.unit_help)}."
        f'<div class="rl-legend-scale"><span class="rl-swatch" style="{heat_style(-1.0)}"></span> lowered the score '
        f'({low:+.3f}) <span class="rl-swatch rl-deciding"></span> no effect '
        f'<span class="rl-swatch" style="{heat_style(1.0)}"></span> raised it ({high:+.3f} {esc(explanation.unit)})</div>'
        f'<div class="rl-legend-how">{esc(explanation.how)}; {esc(explanation.precision)}, '
        f"{explanation.ms:,.0f} ms.{largest}</div></div>"
    )


def chunk_text_html(
    doc: Document,
    chunks: Sequence[ChunkScore],
    deciding: int | None,
    truncated_at: int | None,
    explanation: Explanation | None = None,
) -> str:
    """The document text with the deciding window highlighted and the truncation point marked; with an
    explanation of `doc.full_text`, each of its spans carries its heat (colour and a tooltip with the number)."""
    text = doc.full_text
    span = None
    if deciding is not None and 0 <= deciding < len(chunks):
        span = (chunks[deciding].start, chunks[deciding].end)
    cut = truncated_at if truncated_at is not None and 0 < truncated_at < len(text) else None
    heat = list(explanation.spans) if explanation is not None and explanation.text == text else []
    bounds = [point for h in heat for point in (h.start, h.end)]
    points = sorted({0, len(text), *(span or ()), *((cut,) if cut is not None else ()), *bounds})
    out: list[str] = []
    for start, end in itertools.pairwise(points):
        if span and start == span[0]:
            out.append(
                f'<span class="rl-deciding-tag" title="the window that decided the document score">'
                f"▼ window {deciding + 1} decided the score</span>"
            )
        if cut is not None and start == cut:
            out.append(
                '<span class="rl-cut" title="a cross-encoder that truncates its input never reads past this point">'
                "✂ a truncating model stops reading here</span>"
            )
        classes = []
        if span and span[0] <= start < span[1]:
            classes.append("rl-deciding")
        if cut is not None and start >= cut:
            classes.append("rl-unread")
        piece = esc(text[start:end])
        hot = next((h for h in heat if h.start <= start < h.end), None)
        if hot is not None and explanation is not None:
            share = explanation.share(hot)
            classes += ["rl-heat", "rl-heat-pos" if hot.delta >= 0 else "rl-heat-neg"]
            style = heat_style(share)
            styled = f' style="{style}"' if style else ""
            out.append(f'<span class="{" ".join(classes)}"{styled} title="{esc(heat_title(hot, explanation))}">{piece}</span>')
        else:
            out.append(f'<span class="{" ".join(classes)}">{piece}</span>' if classes else piece)
    return f'<div class="rl-doctext{" rl-explained" if heat else ""}">{"".join(out)}</div>'
