"""Thresholds for RAG: how a cross-encoder's sigmoid score relates to graded relevance, and the score to cut at.

Pairs are (sigmoid of the model's score, grade) for every document the model scored on a judged split; a
document nobody judged counts as grade 0, as the metrics count it (`judged_only` drops it instead). The
reliability diagram bins the scores (equal width on 0-1) and shows per bin the mean grade and the fraction
relevant (grade >= 1): a calibrated model's fraction relevant tracks its score. The threshold for a target
precision is the lowest score t such that, of the pairs scoring t or more, at least that fraction is
relevant: passing documents above t to an LLM keeps that precision on this split with the most recall.
Recall there is over the relevant documents the model scored (ones retrieval never reached are not counted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reranker.corpus import Qrels
from reranker.types import PipelineResult

BINS = 10


@dataclass(frozen=True)
class ScoreBin:
    lo: float
    hi: float
    pairs: int
    mean_score: float
    mean_grade: float
    fraction_relevant: float


@dataclass(frozen=True)
class Calibration:
    """A model's reliability bins and the threshold that keeps `target_precision`, with its recall."""

    pairs: int
    relevant: int
    unjudged: int
    bins: tuple[ScoreBin, ...]
    target_precision: float
    threshold: float | None  # None: no cut reaches the target precision
    precision: float | None
    recall: float | None
    kept: int  # pairs at or above the threshold
    reason: str = ""


def scored_pairs(results: Mapping[str, PipelineResult], qrels: Qrels, stage: str = "reranked") -> list[tuple[float, int | None]]:
    """(sigmoid score, grade or None when unjudged) for every document the cross-encoder scored in `stage`."""
    pairs: list[tuple[float, int | None]] = []
    for q, result in results.items():
        if q not in qrels or stage not in result.stages:
            continue
        for hit in result.stages[stage].hits:
            if hit.normalized is not None:
                pairs.append((float(hit.normalized), qrels[q].get(hit.doc_id)))
    return pairs


def calibrate(
    pairs: Iterable[tuple[float, int | None]],
    *,
    target_precision: float = 0.8,
    bins: int = BINS,
    judged_only: bool = False,
    relevant_grade: int = 1,
) -> Calibration:
    """Reliability bins and the lowest score threshold whose precision is at least `target_precision`."""
    if not 0 < target_precision <= 1:
        raise ValueError("the target precision must be in (0, 1]")
    raw = list(pairs)
    unjudged = sum(1 for _, g in raw if g is None)
    data = [(s, g or 0) for s, g in raw if not (judged_only and g is None)]
    relevant = sum(1 for _, g in data if g >= relevant_grade)
    out_bins = _bins(data, bins, relevant_grade)
    if not data:
        return Calibration(0, 0, unjudged, out_bins, target_precision, None, None, None, 0, "no scored pairs")
    if relevant == 0:
        return Calibration(len(data), 0, unjudged, out_bins, target_precision, None, None, None, 0, "no relevant pairs")
    ordered = sorted(data, key=lambda p: -p[0])
    best: tuple[float, float, float, int] | None = None
    hits, highest = 0, 0.0
    for i, (score, grade) in enumerate(ordered):
        hits += grade >= relevant_grade
        if i + 1 < len(ordered) and ordered[i + 1][0] == score:
            continue  # a threshold keeps every pair with an equal score
        precision = hits / (i + 1)
        highest = max(highest, precision)
        if precision >= target_precision:
            best = (score, precision, hits / relevant, i + 1)
    if best is None:
        return Calibration(
            len(data), relevant, unjudged, out_bins, target_precision, None, None, None, 0,
            f"no score threshold reaches precision {target_precision:g} on this split (the best is {highest:.2f})",
        )  # fmt: skip
    score, precision, recall, kept = best
    return Calibration(len(data), relevant, unjudged, out_bins, target_precision, score, precision, recall, kept)


def _bins(data: Sequence[tuple[float, int]], count: int, relevant_grade: int) -> tuple[ScoreBin, ...]:
    out = []
    for b in range(count):
        lo, hi = b / count, (b + 1) / count
        inside = [(s, g) for s, g in data if lo <= s < hi or (b == count - 1 and s == 1.0)]
        if not inside:
            continue
        n = len(inside)
        out.append(
            ScoreBin(
                lo,
                hi,
                n,
                sum(s for s, _ in inside) / n,
                sum(g for _, g in inside) / n,
                sum(g >= relevant_grade for _, g in inside) / n,
            )
        )
    return tuple(out)
