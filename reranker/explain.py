"""Why a text scored as it did: each sentence's (or token span's) contribution to the cross-encoder's
logit for the window that decided the text's score.

Two methods, and every explanation says which one produced it:

- **Occlusion** (the default; Zeiler & Fergus, ECCV 2014, for text Li, Monroe & Jurafsky, "Understanding
  Neural Networks through Representation Erasure", 2016): a span's contribution is the window's logit
  minus the logit of the same window with that span's tokens removed. The variants go through the model
  batched by length, in passes of at most `CPU_PASS_TOKENS` tokens on a CPU (one pass of up to `MAX_BATCH`
  inputs elsewhere); the unchanged window's score usually comes from the score cache.
- **Integrated gradients** (Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017)
  on the input word embeddings: the path from a baseline (the window's tokens replaced by [PAD], the
  query and special tokens kept) to the input in `steps` midpoint steps (16 per pass: the default 16 and the
  two end points take one forward and backward pass); a span's
  contribution is the sum of its tokens' attributions, and all of them add up to the window's logit
  minus the baseline's (`Explanation.convergence` is how far from that the finite sum lands).

Both report logits (the unit is written out as "logit change"), always computed in fp32 whatever
precision the reranker scores in, through the reranker's own model, device, threads and score cache.

Sentences come from `sentence_spans`, a plain regular expression: a sentence ends at `.`, `!` or `?`
(and any closing quotes or brackets) followed by whitespace and a character that is not a lowercase
letter, or at a line break. "e.g. the" stays in one sentence; "Dr. Smith" is split. Offsets index the
text exactly. With `granularity="tokens"` the window is cut into fixed spans of `span_tokens` tokens.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypedDict

from reranker.errors import ConfigError
from reranker.speed import CPU_PASS_TOKENS
from reranker.types import ChunkScore, Document

if TYPE_CHECKING:
    from reranker.cross_encoder import CrossEncoderReranker

Method = Literal["occlusion", "integrated-gradients"]
Granularity = Literal["sentence", "tokens"]


class ExplainOptions(TypedDict, total=False):
    """`explain`'s keyword arguments, for callers that pass them on (`Reranker.explain`)."""

    method: Method
    granularity: Granularity
    span_tokens: int
    steps: int
    window: int | None
METHODS: tuple[Method, ...] = ("occlusion", "integrated-gradients")
GRANULARITIES: tuple[Granularity, ...] = ("sentence", "tokens")
UNIT = "logit change"
PRECISION = "fp32"
DEFAULT_SPAN_TOKENS = 16
MIN_SPAN_TOKENS = 2
DEFAULT_STEPS = 16
MAX_STEPS = 256
# Inputs per forward pass: a 400-token window has ~15-25 sentences (one pass on a GPU); tiny token spans or a
# window of one-word lines are split into passes of this size so memory stays bounded.
MAX_BATCH = 64
# Integrated-gradients steps per forward and backward pass (the default steps take one pass; more steps
# take more passes, since a backward pass keeps every layer's activations of every step in memory).
STEPS_PER_PASS = 16

UNIT_HELP = {
    "occlusion": "logit change: the window's score minus its score with the {span} removed (positive: the {span} "
    "raised the score)",
    "integrated-gradients": "logit change (integrated gradients): the {span}'s share of the window's score minus the "
    "score of the window with its text replaced by [PAD] tokens (positive: the {span} raised the score)",
}

_BOUNDARY = re.compile(r"""[.!?]+["'\u2019\u201d)\]]*(?=\s+[^\sa-z])|\n""")


@dataclass(frozen=True)
class SpanContribution:
    """One sentence (or token span) of the explained window and its contribution to the window's logit.

    `start`/`end` are character offsets into the explained text (`text == source[start:end]`);
    `delta` is in `unit` (logits): for occlusion the window's score minus its score without this span.
    """

    start: int
    end: int
    text: str
    delta: float
    token_start: int
    token_end: int
    unit: str = UNIT


@dataclass(frozen=True)
class Explanation:
    """Every span's contribution to the logit of one window of a text, and how it was computed.

    `score` is the window's logit in fp32 (nothing removed); `window` the window explained (character and
    token offsets into `text`, and its score as the reranker ranked it); `deciding` whether that window
    decided the text's score. `inputs` counts the model inputs (occlusion: the window and one variant per
    span; integrated gradients: the window, the baseline and the steps), `scored` those the model ran (the
    rest came from the score cache), `per_pass` how many of those went through the model at a time;
    integrated gradients fills `baseline_score` and `convergence` too.
    """

    query: str
    text: str
    model: str
    method: Method
    granularity: Granularity
    score: float
    window: ChunkScore
    windows: int
    deciding: bool
    spans: tuple[SpanContribution, ...]
    inputs: int
    ms: float
    scored: int = 0
    per_pass: int = MAX_BATCH
    precision: str = PRECISION
    unit: str = UNIT
    baseline_score: float | None = None
    convergence: float | None = None
    messages: tuple[str, ...] = ()

    @property
    def unit_help(self) -> str:
        """What the numbers mean, in a sentence."""
        return UNIT_HELP[self.method].format(span="sentence" if self.granularity == "sentence" else "token span")

    @property
    def scale(self) -> float:
        """The largest absolute contribution (0 when there are no spans): heat colours are relative to it."""
        return max((abs(s.delta) for s in self.spans), default=0.0)

    def share(self, span: SpanContribution) -> float:
        """The span's contribution relative to the largest one, -1 to 1."""
        scale = self.scale
        return span.delta / scale if scale > 0 else 0.0

    @property
    def passes(self) -> int:
        """Forward passes the explanation took: none when every score came from the cache, else one unless
        occlusion had more than `per_pass` inputs to score, or integrated gradients more than STEPS_PER_PASS steps."""
        if self.method == "occlusion":
            return -(-self.scored // self.per_pass)
        return -(-(self.inputs - 2) // STEPS_PER_PASS)

    @property
    def how(self) -> str:
        """How it was computed, in a phrase: method, inputs and passes."""
        if self.method == "occlusion":
            passes = {0: "no forward pass (every score from the cache)", 1: "one forward pass"}.get(
                self.passes, f"{self.passes} forward passes"
            )
            return f"occlusion: the window and {self.inputs - 1} variants, each without one span, in {passes}"
        return (
            f"integrated gradients: {self.inputs - 2} steps from a [PAD] baseline (logit {self.baseline_score:+.3f}) "
            f"in {'one forward and backward pass' if self.passes == 1 else f'{self.passes} forward and backward passes'}; "
            "the spans sum to the score minus the baseline's within "
            f"{abs(self.convergence or 0.0):.3f}"
        )

    @property
    def top(self) -> SpanContribution | None:
        """The span that raised the score most."""
        return max(self.spans, key=lambda s: s.delta, default=None)

    def segments(self) -> list[tuple[int, int, SpanContribution | None]]:
        """The window's text as consecutive (start, end, span or None) pieces, for rendering."""
        out: list[tuple[int, int, SpanContribution | None]] = []
        cursor = self.window.start
        for span in self.spans:
            if span.start > cursor:
                out.append((cursor, span.start, None))
            out.append((span.start, span.end, span))
            cursor = span.end
        if cursor < self.window.end:
            out.append((cursor, self.window.end, None))
        return out

    def to_json(self) -> dict:
        """Plain data (what `python -m reranker explain --json` prints)."""
        window = self.window
        return {
            "query": self.query,
            "model": self.model,
            "method": self.method,
            "granularity": self.granularity,
            "unit": self.unit,
            "unit_help": self.unit_help,
            "precision": self.precision,
            "score": round(self.score, 4),
            "window": {
                "index": window.index,
                "start": window.start,
                "end": window.end,
                "token_start": window.token_start,
                "token_end": window.token_end,
                "ranked_score": round(window.raw, 4),
                "deciding": self.deciding,
            },
            "windows": self.windows,
            "inputs": self.inputs,
            "scored": self.scored,
            "ms": round(self.ms, 1),
            "baseline_score": None if self.baseline_score is None else round(self.baseline_score, 4),
            "convergence": None if self.convergence is None else round(self.convergence, 4),
            "spans": [
                {
                    "start": s.start,
                    "end": s.end,
                    "token_start": s.token_start,
                    "token_end": s.token_end,
                    "delta": round(s.delta, 4),
                    "text": s.text,
                }
                for s in self.spans
            ],
            "messages": list(self.messages),
        }


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Character spans [start, end) of the sentences in `text[start:end]`, whitespace trimmed (see the module
    docstring for the rule). Offsets index `text` itself.

    Example:
        >>> text = "Tides follow the Moon. They rise twice a day, e.g. at noon.\\nSecond line"
        >>> [text[s:e] for s, e in sentence_spans(text)]
        ['Tides follow the Moon.', 'They rise twice a day, e.g. at noon.', 'Second line']
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in _BOUNDARY.finditer(text, start, end):
        _add_trimmed(spans, text, cursor, match.end())
        cursor = match.end()
    _add_trimmed(spans, text, cursor, end)
    return spans


def _add_trimmed(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


def _units(
    text: str, offsets: Sequence[tuple[int, int]], window: ChunkScore, granularity: Granularity, span_tokens: int
) -> list[tuple[int, int, int, int]]:
    """(char start, char end, token start, token end) of each span; token indices are relative to the window."""
    n = window.token_end - window.token_start
    local = offsets[window.token_start : window.token_end]
    if granularity == "tokens":
        return [
            (local[lo][0], local[min(lo + span_tokens, n) - 1][1], lo, min(lo + span_tokens, n))
            for lo in range(0, n, span_tokens)
        ]
    units = []
    token = 0
    for start, end in sentence_spans(text, window.start, window.end):
        while token < n and local[token][0] < start:
            token += 1
        first = token
        while token < n and local[token][0] < end:
            token += 1
        if token > first:  # a "sentence" the tokenizer drops entirely has nothing to occlude
            units.append((start, end, first, token))
    return units


def check_options(method: str, granularity: str, span_tokens: int, steps: int) -> None:
    if method not in METHODS:
        raise ConfigError(f"explanation method must be one of {', '.join(METHODS)}, not {method!r}")
    if granularity not in GRANULARITIES:
        raise ConfigError(f"explanation granularity must be one of {', '.join(GRANULARITIES)}, not {granularity!r}")
    if isinstance(span_tokens, bool) or not isinstance(span_tokens, int) or span_tokens < MIN_SPAN_TOKENS:
        raise ConfigError(f"token spans must be at least {MIN_SPAN_TOKENS} tokens, not {span_tokens!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= MAX_STEPS:
        raise ConfigError(f"integrated-gradients steps must be between 2 and {MAX_STEPS}, not {steps!r}")


def explain(
    reranker: CrossEncoderReranker,
    query: str,
    text: str,
    *,
    method: Method = "occlusion",
    granularity: Granularity = "sentence",
    span_tokens: int = DEFAULT_SPAN_TOKENS,
    steps: int = DEFAULT_STEPS,
    window: int | None = None,
) -> Explanation:
    """Each sentence's (or token span's) contribution to the cross-encoder's logit for one window of `text`.

    The text is windowed and scored exactly as the reranker scores documents (through its score cache);
    by default the window that decided the text's score is explained, or the window with index `window`.

    Args:
        reranker: A loaded cross-encoder stage (its model, device, threads and cache are used as they are).
        query: The query.
        text: The text to explain (for a `Document`, its `full_text`); span offsets index into it.
        method: "occlusion" (score drop when a span is removed) or "integrated-gradients".
        granularity: "sentence", or "tokens" for fixed spans of `span_tokens` tokens.
        span_tokens: Tokens per span with `granularity="tokens"`.
        steps: Integrated-gradients steps (ignored by occlusion).
        window: Index of the window to explain; None: the deciding window.

    Returns:
        An `Explanation`: the window's fp32 logit and one `SpanContribution` per span, in text order.

    Raises:
        ConfigError: Empty query or text, an unknown method or granularity, or a window index out of range.
    """
    check_options(method, granularity, span_tokens, steps)
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("The query is empty: type a question or some keywords.")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("The text to explain is empty.")
    started = time.perf_counter()
    scores, notes, _, _ = reranker.score_documents(query, [Document("explained", text)])
    document = scores[0]
    index = document.deciding_chunk if window is None else window
    if not 0 <= index < len(document.chunks):
        raise ConfigError(
            f"the text has {len(document.chunks)} scored windows, so window index {index} (counting from 0) does not exist"
        )
    chunk = document.chunks[index]
    pair_text, query_ids, _ = reranker.pair_query(query)
    ids, offsets = reranker.tokens(text)
    window_ids = ids[chunk.token_start : chunk.token_end]
    units = _units(text, offsets, chunk, granularity, span_tokens)
    baseline = convergence = None
    per_pass = MAX_BATCH
    if method == "occlusion":
        per_pass = _per_pass(reranker, len(query_ids) + len(window_ids))
        full, deltas, inputs, scored = _occlusion(
            reranker, pair_text, query_ids, text, chunk, window_ids, offsets, units, per_pass
        )
    else:
        full, baseline, deltas, total, inputs = _integrated_gradients(reranker, query_ids, window_ids, units, steps)
        scored = inputs
        convergence = total - (full - baseline)
    spans = tuple(
        SpanContribution(start, end, text[start:end], float(delta), chunk.token_start + lo, chunk.token_start + hi)
        for (start, end, lo, hi), delta in zip(units, deltas, strict=True)
    )
    return Explanation(
        query=query,
        text=text,
        model=reranker.name,
        method=method,
        granularity=granularity,
        score=float(full),
        window=chunk,
        windows=len(document.chunks),
        deciding=index == document.deciding_chunk,
        spans=spans,
        inputs=inputs,
        scored=scored,
        per_pass=per_pass,
        ms=(time.perf_counter() - started) * 1000,
        baseline_score=baseline,
        convergence=convergence,
        messages=tuple(notes),
    )


def explain_document(reranker: CrossEncoderReranker, query: str, document: Document, **options) -> Explanation:
    """`explain` over a document's `full_text` (title and text, as the reranker reads it)."""
    return explain(reranker, query, document.full_text, **options)


def _per_pass(reranker, pair_tokens: int) -> int:
    """Occlusion inputs per forward pass: on a CPU as many as fit in CPU_PASS_TOKENS, else MAX_BATCH."""
    if reranker.device != "cpu":
        return MAX_BATCH
    tokens = pair_tokens + reranker.tokenizer.num_special_tokens_to_add(pair=True)
    return max(1, min(MAX_BATCH, CPU_PASS_TOKENS // tokens))


def _occlusion(
    reranker, pair_text, query_ids, text, chunk, window_ids, offsets, units, per_pass
) -> tuple[float, list[float], int, int]:
    """The window's logit, each unit's drop when its tokens are removed, the number of model inputs and how
    many of them the model scored (the rest came from the cache)."""
    window_text = text[chunk.start : chunk.end]
    pairs = [(pair_text, window_text)]
    pair_ids = [(query_ids, window_ids)]
    for _, _, lo, hi in units:
        # The cache keys a variant by its text; the model reads its token ids (the window's, less the span's).
        cut_start = offsets[chunk.token_start + lo][0]
        cut_end = offsets[chunk.token_start + hi - 1][1]
        pairs.append((pair_text, text[chunk.start : cut_start] + text[cut_end : chunk.end]))
        pair_ids.append((query_ids, window_ids[:lo] + window_ids[hi:]))
    scores, scored = reranker.score_pairs_counted(pairs, pair_ids, precision=PRECISION, batch_size=per_pass)
    full = scores[0]
    return full, [full - s for s in scores[1:]], len(pairs), scored


def _raw_logit(logits):
    """One score per row, as `cross_encoder._logits_to_raw` computes it, in torch (differentiable)."""
    import torch

    if logits.ndim == 1:
        return logits
    if logits.shape[1] == 1:
        return logits[:, 0]
    return logits[:, -1] - torch.logsumexp(logits[:, :-1], dim=1)


def _integrated_gradients(reranker, query_ids, window_ids, units, steps) -> tuple[float, float, list[float], float, int]:
    """(window logit, baseline logit, each unit's summed attribution, all tokens' attributions summed, model inputs).

    The first pass holds the window, the baseline and up to STEPS_PER_PASS of the path's midpoints; more steps
    take more passes, their gradients summed."""
    import torch

    template = reranker.template
    network = getattr(reranker.model, "transformers_model", None)
    if template is None or network is None or not hasattr(network, "get_input_embeddings"):
        raise ConfigError(
            f"integrated gradients needs a transformers model whose pair inputs can be built from token ids; "
            f"{reranker.name} has none. Use method='occlusion'."
        )
    features = template.batch([(query_ids, window_ids)])
    device = next(network.parameters()).device
    features = {k: v.to(device) for k, v in features.items()}
    ids = features["input_ids"]
    first = len(template.prefix) + len(query_ids) + len(template.middle)
    baseline_ids = ids.clone()
    baseline_ids[0, first : first + len(window_ids)] = template.pad_id
    with reranker.inference():
        embeddings = network.get_input_embeddings()
        with torch.no_grad():
            x, x0 = embeddings(ids).float(), embeddings(baseline_ids).float()
        alphas = (torch.arange(steps, dtype=x.dtype, device=device) + 0.5) / steps  # midpoint rule
        gradient_sum = torch.zeros_like(x[0])
        for n, chunk in enumerate(alphas.split(STEPS_PER_PASS)):
            ends = [x, x0] if n == 0 else []
            path = torch.cat([*ends, x0 + chunk[:, None, None] * (x - x0)]).requires_grad_(True)
            extra = {k: v.expand(len(path), -1) for k, v in features.items() if k != "input_ids"}
            raw = _raw_logit(network(inputs_embeds=path, **extra).logits.float())
            (grads,) = torch.autograd.grad(raw[len(ends) :].sum(), path)
            gradient_sum += grads[len(ends) :].sum(dim=0)
            if n == 0:
                full, baseline = float(raw[0].detach()), float(raw[1].detach())
    per_token = ((x - x0)[0] * gradient_sum / steps).sum(dim=-1)[first : first + len(window_ids)].detach().cpu()
    deltas = [float(per_token[lo:hi].sum()) for _, _, lo, hi in units]
    return full, baseline, deltas, float(per_token.sum()), steps + 2
