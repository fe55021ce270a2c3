"""Overlapping token windows over a document, and aggregation of window scores to one score.

Scoring every window and keeping the best (MaxP) follows Dai & Callan, "Deeper Text
Understanding for IR with Contextual Neural Language Modeling" (SIGIR 2019); FirstP is what a
truncating cross-encoder does implicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Aggregation = Literal["max", "mean", "first"]
AGGREGATIONS: tuple[Aggregation, ...] = ("max", "mean", "first")


@dataclass(frozen=True)
class Window:
    """Token range [token_start, token_end) and its character span [start, end)."""

    index: int
    token_start: int
    token_end: int
    start: int
    end: int


def token_windows(offsets: Sequence[tuple[int, int]], size: int, overlap: int) -> list[Window]:
    """Windows of `size` tokens stepping by `size - overlap`, the last one ending at the last token."""
    if size <= 0:
        raise ValueError("window size must be positive")
    if not 0 <= overlap < size:
        raise ValueError("overlap must be ≥ 0 and smaller than the window size")
    n = len(offsets)
    if n == 0:
        return [Window(0, 0, 0, 0, 0)]
    stride = size - overlap
    windows = []
    start = 0
    while True:
        end = min(start + size, n)
        windows.append(Window(len(windows), start, end, offsets[start][0], offsets[end - 1][1]))
        if end >= n:
            return windows
        start += stride


def aggregate(scores: Sequence[float], how: Aggregation) -> tuple[float, int]:
    """Document score from window scores, and the index of the window that decided it."""
    if not scores:
        raise ValueError("no window scores to aggregate")
    if how == "max":
        best = max(range(len(scores)), key=lambda i: scores[i])
        return float(scores[best]), best
    if how == "first":
        return float(scores[0]), 0
    if how == "mean":
        mean = sum(scores) / len(scores)
        # With mean, no single window decides; report the one closest to the mean's pull: the best.
        return float(mean), max(range(len(scores)), key=lambda i: scores[i])
    raise ValueError(f"unknown aggregation {how!r}; use one of {', '.join(AGGREGATIONS)}")
