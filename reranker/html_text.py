"""The small pieces of HTML the page (reranker.ui.render) and the snapshot (reranker.evaluation.export) both
write, defined once: escaping, a document's snippet, and the heat colour of an explained span."""

from __future__ import annotations

import html

SNIPPET_CHARS = 220
# Heat colours: a span that raised the score is green, one that lowered it red; the strongest is most opaque.
HEAT_RGB = {"pos": (22, 163, 74), "neg": (220, 38, 38)}


def esc(value: object) -> str:
    """Text (untrusted: documents, queries, file names) as HTML, quotes included."""
    return html.escape(str(value), quote=True)


def snippet_text(text: str, limit: int = SNIPPET_CHARS) -> str:
    """`text` on one line, cut at the last word boundary before `limit` characters, with an ellipsis when cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def heat_style(share: float) -> str:
    """Inline background for a span whose contribution is `share` (-1 to 1) of the largest one; none (the
    deciding window's own background shows) when it is under 2% of the largest."""
    if abs(share) < 0.02:
        return ""
    r, g, b = HEAT_RGB["pos" if share >= 0 else "neg"]
    return f"background-color: rgba({r}, {g}, {b}, {0.1 + 0.6 * min(abs(share), 1.0):.2f})"
