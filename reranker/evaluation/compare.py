"""Comparing two rankings: per-document movement, top-k overlap, Kendall's tau, rank-biased overlap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reranker.types import RankedList

MoveKind = Literal["up", "down", "same", "new", "dropped", "unscored"]


@dataclass(frozen=True)
class Movement:
    """How a document moved from `before` to `after` (both 1-based ranks, None when absent)."""

    kind: MoveKind
    before: int | None
    after: int | None

    @property
    def delta(self) -> int:
        if self.before is None or self.after is None:
            return 0
        return self.before - self.after

    @property
    def label(self) -> str:
        if self.kind == "up":
            return f"▲ {self.delta}"
        if self.kind == "down":
            return f"▼ {-self.delta}"
        if self.kind == "new":
            return "★ new" if self.before is None else f"★ new (was {self.before})"
        if self.kind == "dropped":
            return "✖ dropped" if self.after is None else f"✖ dropped (now {self.after})"
        if self.kind == "unscored":
            return "· not reranked"
        return "="


def movement(doc_id: str, before: RankedList, after: RankedList, top_n: int) -> Movement:
    """Up/down within the top-n, "new" when it entered the top-n, "dropped" when it left it,
    "unscored" when it was in the top-n but past the rerank depth (a budget or a shallow depth), so the
    cross-encoder never scored it: that is not the reranker's verdict."""
    b, a = before.rank_of(doc_id), after.rank_of(doc_id)
    in_before = b is not None and b <= top_n
    in_after = a is not None and a <= top_n
    if in_before and a is None:
        return Movement("unscored", b, None)
    if in_after and not in_before:
        return Movement("new", b, a)
    if in_before and not in_after:
        return Movement("dropped", b, a)
    if a is None or b is None or a == b:
        return Movement("same", b, a)
    return Movement("up" if a < b else "down", b, a)


def top_k_overlap(a: list[str], b: list[str], k: int) -> float:
    """|top-k(a) ∩ top-k(b)| / k."""
    if k <= 0:
        return 0.0
    return len(set(a[:k]) & set(b[:k])) / k


def kendall_tau(a: list[str], b: list[str]) -> float:
    """Kendall's tau-b over the documents both lists contain (1 = same order, −1 = reversed)."""
    from scipy.stats import kendalltau

    common = [d for d in a if d in set(b)]
    if len(common) < 2:
        return 1.0
    position = {d: i for i, d in enumerate(b)}
    tau = kendalltau(list(range(len(common))), [position[d] for d in common]).statistic
    return float(tau)


def rank_biased_overlap(a: list[str], b: list[str], p: float = 0.9) -> float:
    """RBO (Webber, Moffat & Zobel, TOIS 2010), extrapolated form for finite lists of equal depth."""
    depth = min(len(a), len(b))
    if depth == 0:
        return 1.0 if len(a) == len(b) else 0.0
    seen_a: set[str] = set()
    seen_b: set[str] = set()
    overlap = 0
    total = 0.0
    for d in range(1, depth + 1):
        x, y = a[d - 1], b[d - 1]
        if x == y:
            overlap += 1
        else:
            overlap += (x in seen_b) + (y in seen_a)
        seen_a.add(x)
        seen_b.add(y)
        total += (overlap / d) * p**d
    return float(overlap / depth * p**depth + (1 - p) / p * total)
