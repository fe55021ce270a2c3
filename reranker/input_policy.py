"""How a (query, document window) pair is laid out when the query is long, and how the blend reacts.

A cross-encoder reads the query and one document window per pair. Its training length (256 tokens for the
project's MiniLM family) is what it has seen; its position limit (512) is what it can read. A long query
(a pasted paragraph, an argument, a RAG question with its context) inside the training length leaves the
document a keyhole: windows of a few dozen tokens, many of them, each scored without context. The policy
here decides, per query, from token counts alone (pure functions, no model):

- how many tokens each pair gets: the training length, or the position limit when the query is long;
- how much of the query is kept (its start, or its start and its end) so documents keep a useful window;
- which blend of the fused score goes with it: a model never trained on long queries is trusted less there.

`InputNote` says what happened, for the page and the CLI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from reranker.errors import ConfigError

QueryCut = Literal["start", "edges"]
QUERY_CUTS: tuple[QueryCut, ...] = ("start", "edges")
# A window shorter than this is a keyhole: the note says so even when the query is not long.
USEFUL_WINDOW_TOKENS = 128


@dataclass(frozen=True)
class InputPolicy:
    """Pair layout and blend for long queries.

    Attributes:
        long_query_share: A query is long when its tokens exceed this share of the model's training length.
        extend_long_queries: Long queries get pairs of the model's position limit instead of its training length.
        min_window_tokens: Fewest document tokens per window; a query that leaves fewer is cut.
        cut_query_share: Share of the pair's tokens a cut query keeps (at most what leaves `min_window_tokens`).
        query_cut: Which tokens a cut query keeps: its start, or its start and its end (half each).
        long_query_blend: Weight of the fused score for long queries when no blend was set explicitly; None keeps
            the model card's blend. The larger of the two applies.
    """

    long_query_share: float = 1 / 3
    extend_long_queries: bool = False
    min_window_tokens: int = 32
    cut_query_share: float = 0.5
    query_cut: QueryCut = "start"
    long_query_blend: float | None = None

    def validate(self) -> None:
        if not 0 < self.long_query_share <= 1:
            raise ConfigError(f"long_query_share must be in (0, 1], not {self.long_query_share}")
        if self.min_window_tokens < 1:
            raise ConfigError(f"min_window_tokens must be at least 1, not {self.min_window_tokens}")
        if not 0 < self.cut_query_share < 1:
            raise ConfigError(f"cut_query_share must be in (0, 1), not {self.cut_query_share}")
        if self.query_cut not in QUERY_CUTS:
            raise ConfigError(f"query_cut must be one of {', '.join(QUERY_CUTS)}, not {self.query_cut!r}")
        if self.long_query_blend is not None and not 0 <= self.long_query_blend <= 1:
            raise ConfigError(f"long_query_blend must be between 0 and 1, not {self.long_query_blend}")

    @classmethod
    def from_card(cls, values: dict | None) -> InputPolicy:
        """The policy a model card (`finetune.json`'s "input_policy") records; today's layout when it has none."""
        if not values:
            return UNCHANGED
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        policy = cls(**known)
        policy.validate()
        return policy


# Pairs exactly as before this policy existed: the training length, a query cut to its first half only when
# fewer than 32 tokens would be left for the document, the card's blend whatever the query.
UNCHANGED = InputPolicy()


@dataclass(frozen=True)
class PairPlan:
    """How one query's pairs are laid out: tokens per pair, the query tokens kept, the document window."""

    query_tokens: int
    kept: tuple[tuple[int, int], ...]  # token ranges [start, end) of the query that the pairs read
    pair_tokens: int
    training_length: int
    position_limit: int
    window_tokens: int
    long_query: bool

    @property
    def kept_tokens(self) -> int:
        return sum(end - start for start, end in self.kept)

    @property
    def cut(self) -> bool:
        return self.kept_tokens < self.query_tokens

    @property
    def extended(self) -> bool:
        return self.pair_tokens > self.training_length


def plan_pairs(
    query_tokens: int,
    *,
    training_length: int,
    position_limit: int,
    special_tokens: int,
    chunk_tokens: int,
    policy: InputPolicy = UNCHANGED,
    length_fixed: bool = False,
) -> PairPlan:
    """The pair layout for a query of `query_tokens` tokens.

    `length_fixed`: the user set the pair length explicitly (or the model reads text, not ids), so it is
    never extended to the position limit."""
    long_query = query_tokens > policy.long_query_share * training_length
    pair_tokens = training_length
    if long_query and policy.extend_long_queries and not length_fixed:
        pair_tokens = max(training_length, position_limit)
    room = pair_tokens - special_tokens
    keep = query_tokens
    if room - query_tokens < policy.min_window_tokens:
        keep = min(query_tokens, math.floor(policy.cut_query_share * pair_tokens), room - policy.min_window_tokens)
        keep = max(keep, 1)
    kept = query_ranges(query_tokens, keep, policy.query_cut)
    window = max(1, min(chunk_tokens, room - keep))
    return PairPlan(query_tokens, kept, pair_tokens, training_length, position_limit, window, long_query)


def query_ranges(total: int, keep: int, how: QueryCut) -> tuple[tuple[int, int], ...]:
    """Token ranges of a `total`-token query that keep `keep` tokens: its start, or its start and end."""
    if keep >= total:
        return ((0, total),)
    if how == "start":
        return ((0, keep),)
    head = (keep + 1) // 2
    return ((0, head), (total - (keep - head), total))


def cut_ids(ids: tuple[int, ...], plan: PairPlan) -> tuple[int, ...]:
    """The query's token ids the plan keeps, in order."""
    return tuple(i for start, end in plan.kept for i in ids[start:end])


def blend_for(card_blend: float, plan: PairPlan, policy: InputPolicy) -> float:
    """The fused-score weight for this query when no blend was set explicitly."""
    if plan.long_query and policy.long_query_blend is not None:
        return max(card_blend, policy.long_query_blend)
    return card_blend


@dataclass(frozen=True)
class InputNote:
    """What the input policy did to one query, for the page and the CLI."""

    plan: PairPlan
    dropped: tuple[str, ...]  # the query text left out, one piece per cut range (shortened)
    card_blend: float
    blend: float
    blend_explicit: bool

    @property
    def text(self) -> str:
        return describe(self)


def needs_note(plan: PairPlan) -> bool:
    """Say something when the query takes more than a third of the model's input, or windows are keyholes."""
    return plan.query_tokens * 3 > plan.pair_tokens or plan.long_query or plan.cut or plan.window_tokens < USEFUL_WINDOW_TOKENS


def describe(note: InputNote) -> str:
    """The note in one paragraph: the query's share of the input, what was cut, the windows, the blend."""
    plan = note.plan
    parts = [
        f"Long query: {plan.query_tokens} tokens, against the {plan.training_length} tokens per pair the cross-encoder "
        f"was trained on."
        if plan.long_query
        else f"The query takes {plan.query_tokens} of the {plan.pair_tokens} tokens of each pair."
    ]
    if plan.extended:
        parts.append(
            f"Pairs were given {plan.pair_tokens} tokens (the model's position limit), so documents keep longer windows."
        )
    if plan.cut:
        which = "its first" if len(plan.kept) == 1 else "its start and its end,"
        dropped = "; ".join(f"“{piece}”" for piece in note.dropped)
        parts.append(
            f"The query was cut to {which} {plan.kept_tokens} of {plan.query_tokens} tokens; not read: {dropped}."
        )
    small = " (below a useful size)" if plan.window_tokens < USEFUL_WINDOW_TOKENS else ""
    parts.append(f"Each document was read in windows of up to {plan.window_tokens} tokens{small}.")
    if note.blend_explicit:
        parts.append(f"The blend was set to {note.blend:g} of the fused score, and kept.")
    elif note.blend > note.card_blend:
        parts.append(
            f"The blend gives {note.blend:g} of the fused score instead of the model card's {note.card_blend:g}: "
            "the model was not trained on queries this long."
        )
    elif note.blend > 0:
        parts.append(f"The blend gives {note.blend:g} of the fused score, as for any query.")
    return " ".join(parts)


def shorten_middle(text: str, limit: int = 80) -> str:
    """`text` on one line, its middle replaced by an ellipsis past `limit` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    half = (limit - 1) // 2
    return text[:half].rstrip() + " … " + text[-half:].lstrip()
