"""Rank fusion as pure functions over `RankedList`s; inputs are never mutated.

Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009):
    RRF(d) = Σ_r  w_r / (k + rank_r(d)),   k = 60 by default, w_r = 1 unless weighted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

from reranker.renamed import deprecated
from reranker.types import Hit, RankedList, SourceRank


def rrf_label(k: int) -> str:
    return f"RRF score Σ w/(k+rank), k={k} (max {2 / (k + 1):.4f} with two lists at rank 1)"


def reciprocal_rank_fusion(
    runs: Mapping[str, RankedList],
    *,
    k: int = 60,
    weights: Mapping[str, float] | None = None,
    depth: int | None = None,
    stage: str = "fused",
) -> RankedList:
    """Fuse ranked lists by RRF, keeping each document's rank and contribution per input list."""
    if k < 0:
        raise ValueError("RRF k must be ≥ 0")
    weights = weights or {}
    totals: dict[str, float] = {}
    sources: dict[str, dict[str, SourceRank]] = {}
    for name, ranked in runs.items():
        weight = weights.get(name, 1.0)
        for hit in ranked.hits:
            contribution = weight / (k + hit.rank)
            totals[hit.doc_id] = totals.get(hit.doc_id, 0.0) + contribution
            sources.setdefault(hit.doc_id, {})[name] = SourceRank(hit.rank, hit.score, contribution)

    def best_rank(doc_id: str) -> int:
        return min(s.rank for s in sources[doc_id].values())

    order = sorted(totals, key=lambda d: (-totals[d], best_rank(d), d))
    if depth is not None:
        order = order[:depth]
    hits = tuple(
        Hit(doc_id=d, rank=r, score=totals[d], stage=stage, sources=MappingProxyType(sources[d]))
        for r, d in enumerate(order, start=1)
    )
    return RankedList(stage, hits, rrf_label(k))


def zscores(values: list[float]) -> list[float]:
    """Standard scores; all-equal input maps to zeros instead of dividing by zero."""
    if not values:
        return []
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [0.0] * len(values) if std == 0 else [(v - mean) / std for v in values]


def blend(reranked: RankedList, first_stage: RankedList, weight: float, stage: str | None = None) -> RankedList:
    """Blend cross-encoder and first-stage scores: weight·z(first) + (1-weight)·z(cross-encoder).

    Both are z-normalised over the reranked documents of this query, so the scales are comparable.
    Documents absent from the first stage get its lowest score.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight must be in [0, 1], not {weight}")
    if weight == 0.0 or not reranked.hits:
        return reranked
    lowest = min((h.score for h in first_stage.hits), default=0.0)
    first = zscores([(first_stage.get(h.doc_id) or Hit(h.doc_id, 0, lowest, "")).score for h in reranked.hits])
    model = zscores([h.score for h in reranked.hits])
    blended = [weight * f + (1 - weight) * m for f, m in zip(first, model, strict=True)]
    order = sorted(range(len(blended)), key=lambda i: (-blended[i], reranked.hits[i].rank))
    name = stage or reranked.stage
    hits = tuple(
        Hit(
            doc_id=reranked.hits[i].doc_id,
            rank=r,
            score=blended[i],
            stage=name,
            normalized=reranked.hits[i].normalized,
            chunks=reranked.hits[i].chunks,
            deciding_chunk=reranked.hits[i].deciding_chunk,
            truncated_at=reranked.hits[i].truncated_at,
            sources=reranked.hits[i].sources,
        )
        for r, i in enumerate(order, start=1)
    )
    label = f"{weight:g}·z({first_stage.stage}) + {1 - weight:g}·z(cross-encoder logit), z = per-query standard score"
    return RankedList(name, hits, label, reranked.normalized_label)


def interpolate(reranked: RankedList, first_stage: RankedList, weight: float, stage: str | None = None) -> RankedList:
    """Deprecated name of `blend` (one release)."""
    deprecated("fusion.interpolate", "fusion.blend")
    return blend(reranked, first_stage, weight, stage)
