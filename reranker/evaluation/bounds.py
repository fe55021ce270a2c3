"""How far unjudged documents could move a metric: its value with every unjudged document in a ranking's top k
counted not relevant (the minimum, what `eval` reports) and counted relevant at the top grade (the maximum).

For metric@k only the unjudged documents in the top k matter; the maximum adds them to the query's judgments,
so the ideal ranking (nDCG's denominator, recall's relevant count) grows with them, as it would if a judge
graded them so. That can lower nDCG or MAP (a top-grade document below weaker judged ones makes the ranking
less ideal), so per query the bounds are the lower and the higher of the two figures, then averaged. Metrics
without a cutoff use the whole ranking. Both figures are computed by ranx, like the figures they bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reranker.corpus import Qrels
from reranker.evaluation.metrics import Run, evaluate_per_query, is_coverage_metric


def top_grade(qrels: Qrels) -> int:
    """The highest grade the judgments use (at least 1): what an unjudged document counts as at best."""
    return max((g for docs in qrels.values() for g in docs.values()), default=1) or 1


def ranked_top(scores: Mapping[str, float], k: int | None) -> list[str]:
    """A query's documents best first (ties keep the run's order, as `judged_at` and ranx do), cut at k."""
    order = sorted(scores, key=lambda d: -scores[d])
    return order if k is None else order[:k]


def cutoff(metric: str) -> int | None:
    return int(metric.split("@", 1)[1]) if "@" in metric else None


def optimistic_qrels(qrels: Qrels, run: Run, k: int | None, grade: int) -> Qrels:
    """The judgments with every unjudged document of each query's top k added at `grade`."""
    out: Qrels = {}
    for q, docs in qrels.items():
        extra = {d: grade for d in ranked_top(run.get(q) or {}, k) if d not in docs}
        out[q] = {**docs, **extra}
    return out


def per_query_bounds(
    qrels: Qrels, run: Run, metrics: Sequence[str], grade: int | None = None
) -> dict[str, dict[str, tuple[float, float]]]:
    """Query id -> metric -> (min, max) over the queries with a relevant judgment; coverage metrics are left out."""
    grade = grade or top_grade(qrels)
    ranked = [m for m in metrics if not is_coverage_metric(m)]
    low = evaluate_per_query(qrels, run, tuple(ranked))
    out: dict[str, dict[str, tuple[float, float]]] = {q: {} for q in low}
    for k in dict.fromkeys(cutoff(m) for m in ranked):
        group = tuple(m for m in ranked if cutoff(m) == k)
        high = evaluate_per_query(optimistic_qrels(qrels, run, k, grade), run, group)
        for q in low:
            for m in group:
                pair = (low[q][m], high[q][m])
                out[q][m] = (min(pair), max(pair))
    return out


def metric_bounds(
    qrels: Qrels, run: Run, metrics: Sequence[str], grade: int | None = None
) -> dict[str, tuple[float, float]]:
    """Metric -> (min, max) of its mean over the judged queries: unjudged top-k documents all not relevant,
    or all relevant at the top grade."""
    per_query = per_query_bounds(qrels, run, metrics, grade)
    count = len(per_query) or 1
    names = next(iter(per_query.values()), {})
    return {
        m: (sum(v[m][0] for v in per_query.values()) / count, sum(v[m][1] for v in per_query.values()) / count)
        for m in names
    }
