"""Latency budget: pick rerank depths that fit a time budget from the measured cost per pair.

The cross-encoder dominates query latency and its cost is nearly linear in the number of
(query, window) pairs it has to score, so the planner counts the pairs each depth needs
(documents split into windows; pairs already in the score cache cost nothing) and multiplies
by the measured milliseconds per pair. Every plan carries a sentence saying what it chose and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reranker.cross_encoder import CrossEncoderReranker
from reranker.errors import ConfigError
from reranker.speed import timed_ms
from reranker.types import Document

CALIBRATION_DOCUMENTS = 2


@dataclass(frozen=True)
class DepthPlan:
    """A rerank depth chosen for a budget, its expected cost, and the reason."""

    depth: int
    estimated_ms: float
    remaining_ms: float
    per_pair_ms: float
    pairs: int
    reason: str


@dataclass(frozen=True)
class CascadePlan:
    """Depths for a coarse-then-fine cascade under a budget."""

    coarse_depth: int
    fine_depth: int
    estimated_ms: float
    reason: str


def check_budget(budget_ms: float | None) -> None:
    if budget_ms is not None and not budget_ms > 0:
        raise ConfigError(f"latency budget must be a positive number of milliseconds, not {budget_ms!r}; leave it empty for none")


def plan_depth(
    budget_ms: float,
    *,
    spent_ms: float,
    new_pairs: Sequence[int],
    per_pair_ms: float,
    max_depth: int,
    min_depth: int = 1,
    label: str = "rerank",
) -> DepthPlan:
    """The deepest rerank depth (≤ max_depth) whose new pairs fit in what is left of the budget.

    `new_pairs[i]` is how many pairs the document at rank i+1 still needs scored.
    """
    check_budget(budget_ms)
    if per_pair_ms <= 0:
        raise ConfigError("the cost per pair must be positive")
    limit = min(max_depth, len(new_pairs))
    if limit < 1:
        return DepthPlan(0, 0.0, budget_ms - spent_ms, per_pair_ms, 0, f"no candidates to {label}")
    remaining = budget_ms - spent_ms
    depth, pairs = 0, 0
    for i in range(limit):
        if (pairs + new_pairs[i]) * per_pair_ms > remaining:
            break
        pairs += new_pairs[i]
        depth = i + 1
    floor = max(1, min(min_depth, limit))
    head = (
        f"budget {budget_ms:.0f} ms, {spent_ms:.0f} ms already spent, {remaining:.0f} ms left; "
        f"measured {per_pair_ms:.1f} ms per pair"
    )
    if depth < floor:
        pairs = sum(new_pairs[:floor])
        return DepthPlan(
            floor,
            pairs * per_pair_ms,
            remaining,
            per_pair_ms,
            pairs,
            f"{head}: even {label} depth {floor} ({pairs} new pairs ≈ {pairs * per_pair_ms:.0f} ms) exceeds it; "
            f"using depth {floor} anyway",
        )
    if depth == limit:
        cost = f"{pairs} new pairs ≈ {pairs * per_pair_ms:.0f} ms"
        why = f"the configured depth {depth} fits ({cost})" if limit < len(new_pairs) else f"all {depth} candidates fit ({cost})"
        return DepthPlan(depth, pairs * per_pair_ms, remaining, per_pair_ms, pairs, f"{head}: {why}; {label} depth {depth}")
    nxt = pairs + new_pairs[depth]
    return DepthPlan(
        depth,
        pairs * per_pair_ms,
        remaining,
        per_pair_ms,
        pairs,
        f"{head}: {label} depth {depth} needs {pairs} new pairs ≈ {pairs * per_pair_ms:.0f} ms; "
        f"depth {depth + 1} would need {nxt} ≈ {nxt * per_pair_ms:.0f} ms",
    )


def plan_cascade(
    budget_ms: float,
    *,
    spent_ms: float,
    coarse_ms_per_doc: float,
    fine_ms_per_doc: float,
    max_coarse: int,
    max_fine: int,
) -> CascadePlan:
    """Depths for a small coarse model over many candidates, then the fine model over its top.

    The fine depth comes first (it decides the final order): the deepest d ≤ max_fine for which
    the coarse model over d plus the fine model over d fit. Whatever is left widens the coarse pool.
    """
    check_budget(budget_ms)
    if coarse_ms_per_doc <= 0 or fine_ms_per_doc <= 0:
        raise ConfigError("the cost per document must be positive")
    remaining = budget_ms - spent_ms
    fine = max(1, min(max_fine, max_coarse, int(remaining // (coarse_ms_per_doc + fine_ms_per_doc))))
    coarse = max(fine, min(max_coarse, int((remaining - fine * fine_ms_per_doc) // coarse_ms_per_doc)))
    estimated = coarse * coarse_ms_per_doc + fine * fine_ms_per_doc
    reason = (
        f"budget {budget_ms:.0f} ms, {remaining:.0f} ms left; coarse model {coarse_ms_per_doc:.1f} ms/doc, "
        f"fine model {fine_ms_per_doc:.1f} ms/doc: fine depth {fine}"
        + (" (the configured maximum)" if fine == max_fine else "")
        + f", coarse depth {coarse}"
        + (" (the configured maximum)" if coarse == max_coarse else " (what the rest of the budget buys)")
        + f", ≈ {estimated:.0f} ms"
    )
    if estimated > remaining:
        reason += "; over the budget even at the smallest depths"
    return CascadePlan(coarse, fine, estimated, reason)


def measured_cost(reranker: CrossEncoderReranker, query: str, documents: Sequence[Document]) -> tuple[float | None, float]:
    """(ms per pair, ms spent measuring it). Unmeasured models score their top documents first:
    those pairs are needed at any depth and land in the score cache, so the probe costs nothing extra."""
    cost = reranker.per_pair_ms
    if cost is not None:
        return cost, 0.0
    counts = reranker.new_pairs_per_document(query, documents)
    probe = [doc for doc, count in zip(documents, counts, strict=True) if count][:CALIBRATION_DOCUMENTS]
    if not probe:
        return None, 0.0
    with timed_ms() as elapsed:
        reranker.score_documents(query, probe)
    return reranker.per_pair_ms, elapsed[0]


def plan_rerank(
    reranker: CrossEncoderReranker,
    query: str,
    documents: Sequence[Document],
    *,
    budget_ms: float,
    spent_ms: float,
    label: str = "rerank",
) -> DepthPlan:
    """The depth (≤ len(documents)) this reranker can afford for this query in what is left of the budget."""
    cost, probe_ms = measured_cost(reranker, query, documents)
    spent_ms += probe_ms
    new_pairs = reranker.new_pairs_per_document(query, documents)
    if cost is None or not any(new_pairs):
        return DepthPlan(
            len(documents),
            0.0,
            budget_ms - spent_ms,
            cost or 0.0,
            0,
            f"budget {budget_ms:.0f} ms: all {len(documents)} candidates are already scored (score cache); {label} depth "
            f"{len(documents)}",
        )
    return plan_depth(budget_ms, spent_ms=spent_ms, new_pairs=new_pairs, per_pair_ms=cost, max_depth=len(documents), label=label)


def plan_cascade_for(
    coarse: CrossEncoderReranker,
    fine: CrossEncoderReranker,
    query: str,
    documents: Sequence[Document],
    *,
    budget_ms: float,
    spent_ms: float,
    max_fine: int,
) -> CascadePlan:
    """Cascade depths from both models' measured costs; windows per document taken from the coarse pool."""
    coarse_cost, coarse_probe = measured_cost(coarse, query, documents)
    fine_cost, fine_probe = measured_cost(fine, query, documents)
    windows = coarse.new_pairs_per_document(query, documents)
    per_doc = max(1.0, sum(windows) / max(1, len(windows)))
    return plan_cascade(
        budget_ms,
        spent_ms=spent_ms + coarse_probe + fine_probe,
        coarse_ms_per_doc=max(coarse_cost or 0.0, 1e-3) * per_doc,
        fine_ms_per_doc=max(fine_cost or 0.0, 1e-3) * per_doc,
        max_coarse=len(documents),
        max_fine=max_fine,
    )
