"""Ranked lists as HTML, written once for the page (reranker.ui.render) and the snapshot
(reranker.evaluation.export): rank, title and snippet, score with its unit, movement, relevance.

The page adds grade buttons (`grading`) and its script; the snapshot adds each window's score (`details`)
and inlines the page's list styles. Every piece of corpus text and document id is escaped. Rows carry a
`data-doc` attribute, so the page's script can highlight one document in every list at once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from reranker.corpus import Corpus
from reranker.evaluation.compare import Movement, movement
from reranker.html_text import SNIPPET_CHARS, esc, snippet_text
from reranker.judgments import GRADE_NAMES, GRADES
from reranker.types import Document, Hit, RankedList


def score_unit(ranked: RankedList, normalized: bool) -> str:
    """A short unit for a score column, e.g. "logit" or "sigmoid 0–1"."""
    if ranked.stage in ("reranked", "coarse"):
        if normalized and ranked.normalized_label:
            return "sigmoid, 0–1"
        return "logit" if not ranked.score_label.startswith(("0", "1")) and "z(" not in ranked.score_label else "blend"
    return {"bm25": "BM25", "dense": "cosine", "fused": "RRF"}.get(ranked.stage, "score")


def score_caption(ranked: RankedList, normalized: bool) -> str:
    """The full sentence explaining what a list's score is and its scale."""
    if normalized and ranked.normalized_label:
        return ranked.normalized_label
    return ranked.score_label


def hit_score(hit: Hit, normalized: bool) -> float:
    return hit.normalized if normalized and hit.normalized is not None else hit.score


def format_score(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 0.1 or value == 0:
        return f"{value:.3f}"
    return f"{value:.4f}"


def snippet(doc: Document, limit: int = SNIPPET_CHARS) -> str:
    return snippet_text(doc.text, limit)


def title_of(doc: Document) -> str:
    return doc.title or snippet(doc, 80)


def badge(move: Movement, side: str) -> str:
    """A movement badge. On the before side it says where the document went; after, how it moved."""
    if side == "before":
        if move.kind == "dropped":
            now = f" (now #{move.after})" if move.after else ""
            return f'<span class="rl-badge rl-dropped" title="left the top-n after reranking{now}">✖ dropped</span>'
        if move.kind == "unscored":
            title = "past the rerank depth: the cross-encoder did not score it"
            return f'<span class="rl-badge rl-same" title="{title}">· not reranked</span>'
        if move.after is None:
            return '<span class="rl-badge rl-same">–</span>'
        return f'<span class="rl-badge rl-{move.kind}" title="rank after reranking">→ #{move.after}</span>'
    titles = {
        "up": f"moved up {move.delta} from #{move.before}",
        "down": f"moved down {-move.delta} from #{move.before}",
        "new": "entered the top-n" + (f" from #{move.before} in the fused list" if move.before else ""),
        "same": "same rank as before",
    }
    return f'<span class="rl-badge rl-{move.kind}" title="{esc(titles.get(move.kind, ""))}">{esc(move.label)}</span>'


def relevance_mark(grade: int | None, mine: bool = False, shipped: int | None = None) -> str:
    """✓ rel N or ✗ judged 0; `mine` (a grade made here, in the overlay) adds ✎, and says which grade the
    corpus ships for the document (`shipped`), if any."""
    if grade is None:
        return ""
    here, pen = (", judged here", " ✎") if mine else ("", "")
    if mine and shipped is not None:
        here += f" over the corpus's grade {shipped}"
    if grade > 0:
        return f'<span class="rl-rel" title="judged relevant (grade {grade}{here})">✓ rel {grade}{pen}</span>'
    return f'<span class="rl-nonrel" title="judged not relevant (grade 0{here})">✗ judged 0{pen}</span>'


def unjudged_mark() -> str:
    return '<span class="rl-unjudged" title="nobody has judged this document for this query: grade it 0–3">? unjudged</span>'


def grade_controls(grade: int | None, *, mine: bool = False, shipped: int | None = None) -> str:
    """Buttons 0–3, the current grade pressed; × removes a grade made here (`mine`), after which the grade
    the corpus ships (`shipped`) applies again. A shipped grade itself cannot be removed, only overridden."""
    buttons = "".join(
        f'<button type="button" class="rl-grade{" rl-on" if grade == g else ""}" data-grade="{g}" '
        f'aria-pressed="{"true" if grade == g else "false"}" title="grade {g}: {GRADE_NAMES[g]} (key {g})">{g}</button>'
        for g in GRADES
    )
    if mine:
        after = f"the corpus's grade {shipped} applies again" if shipped is not None else "the document is unjudged again"
        buttons += (
            f'<button type="button" class="rl-ungrade" aria-label="remove the grade made here" '
            f'title="remove the grade made here (key Backspace or Delete): {after}">×</button>'
        )
        title = ""
    elif shipped is not None:
        title = ' title="the corpus ships this grade: a grade made here overrides it; the shipped qrels are never rewritten"'
    else:
        title = ""
    return f'<span class="rl-grades" role="group" aria-label="relevance grade"{title}>{buttons}</span>'


@dataclass(frozen=True)
class Column:
    """One ranked list as shown in a column."""

    heading: str
    ranked: RankedList
    other: RankedList
    side: str  # "before" | "after" | "a" | "b"


def ranked_table(
    column: Column,
    corpus: Corpus,
    top_n: int,
    *,
    normalized: bool = False,
    judgments: Mapping[str, int] | None = None,
    grading: bool = False,
    mine: Collection[str] = (),
    shipped: Mapping[str, int] | None = None,
    details: Callable[[Hit], str] | None = None,
) -> str:
    """One list as an HTML table: rank, title + snippet, score with its unit, movement, relevance.

    With `grading`, every row carries grade buttons, a document without a judgment is marked unjudged
    (not counted as 0), and a grade of a document in `mine` (judged here) says so and can be removed,
    bringing back the corpus's own grade from `shipped` (document -> grade) where it has one. `details(hit)`
    is more HTML (escaped by the caller) for the end of a row's document cell."""
    ranked = column.ranked
    unit = score_unit(ranked, normalized)
    rows = []
    for hit in ranked.hits[:top_n]:
        doc = corpus.get(hit.doc_id)
        if doc is None:
            continue
        if column.side in ("before", "after"):
            before, after = (ranked, column.other) if column.side == "before" else (column.other, ranked)
            move_html = badge(movement(hit.doc_id, before, after, top_n), column.side)
        else:
            other_rank = column.other.rank_of(hit.doc_id)
            shown = other_rank is not None and other_rank <= top_n
            label = f"#{other_rank} there" if shown else "not in other"
            kind = "same" if shown and other_rank == hit.rank else ("new" if not shown else "other")
            move_html = f'<span class="rl-badge rl-{kind}" title="rank in the other model\'s list">{esc(label)}</span>'
        if grading:
            grade = (judgments or {}).get(hit.doc_id)
        else:
            grade = judgments.get(hit.doc_id, 0 if judgments else None) if judgments is not None else None
        chunk_note = ""
        if len(hit.chunks) > 1:
            chunk_note = (
                f'<span class="rl-chunks" title="scored as {len(hit.chunks)} token windows; '
                f'window {(hit.deciding_chunk or 0) + 1} decided the score">'
                f"{len(hit.chunks)} windows</span>"
            )
        judged_here = grading and hit.doc_id in mine
        shipped_grade = (shipped or {}).get(hit.doc_id)
        mark = relevance_mark(grade, mine=judged_here, shipped=shipped_grade)
        classes = "rl-row" + (" rl-relevant" if grade else "")
        attributes = ""
        if grading:
            if grade is None:
                mark, classes = unjudged_mark(), classes + " rl-unjudged-row"
            mark += grade_controls(grade, mine=judged_here, shipped=shipped_grade)
            attributes = f' data-grade="{grade if grade is not None else ""}"'
            attributes += f' data-mine="{"1" if judged_here else ""}"'
            if shipped_grade is not None:
                attributes += f' data-shipped="{shipped_grade}"'
        rows.append(
            f'<tr class="{classes}" data-doc="{esc(hit.doc_id)}"{attributes}>'
            f'<td class="rl-rank">{hit.rank}</td>'
            f'<td class="rl-doc"><div class="rl-title">{esc(title_of(doc))}</div>'
            f'<div class="rl-snippet">{esc(snippet(doc))}</div>'
            f'<div class="rl-meta"><code>{esc(hit.doc_id)}</code>{mark}{chunk_note}</div>{details(hit) if details else ""}</td>'
            f'<td class="rl-score" title="{esc(score_caption(ranked, normalized))}">'
            f"{format_score(hit_score(hit, normalized))}</td>"
            f'<td class="rl-move">{move_html}</td></tr>'
        )
    body = "".join(rows) or '<tr><td colspan="4" class="rl-empty">No documents.</td></tr>'
    return (
        f'<div class="rl-col rl-col-{esc(column.side)}">'
        f'<div class="rl-col-head"><h3>{esc(column.heading)}</h3>'
        f'<div class="rl-caption">Score: {esc(score_caption(ranked, normalized))}</div></div>'
        f'<table class="rl-table"><thead><tr><th>#</th><th>Document</th><th>{esc(unit)}</th><th>Move</th></tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )
