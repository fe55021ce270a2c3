"""Evaluation against graded relevance judgments, with ranx (Bassani, ECIR 2022) computing metrics.

A reranked run is the reranked top followed by the rest of the fused list in fused order, as
in BEIR's reranking protocol, so Recall@100 stays comparable across stages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from reranker.corpus import Qrels
from reranker.pipeline import RERANK_STAGES
from reranker.runs import Run
from reranker.types import PipelineResult, RankedList

logger = logging.getLogger(__name__)

METRICS = ("ndcg@10", "mrr@10", "recall@100")
# ranx compiles its metrics with numba on first use; two threads compiling at once abort the process.
RANX_LOCK = threading.RLock()
ID_WIDTH = 12  # digits of the stand-in document ids given to ranx (see _fixed_width_ids)


def stage_run(results: Mapping[str, PipelineResult], stage: str) -> Run:
    """One stage as a run (query id -> doc id -> score); reranked stages continue with the tail of the list
    reranking started from (fused, or the input run of `rerank-run`)."""
    run: Run = {}
    for qid, result in results.items():
        if stage not in result.stages:
            continue
        ranked = result.stages[stage]
        run[qid] = _with_tail(ranked, result.before) if stage in RERANK_STAGES else ranked.as_run()
    return run


def _with_tail(head: RankedList, first_stage: RankedList) -> dict[str, float]:
    scores = head.as_run()
    floor = min(scores.values(), default=0.0)
    for hit in first_stage.hits:
        if hit.doc_id not in scores:
            scores[hit.doc_id] = floor - hit.rank
    return scores


def evaluate_run(qrels: Qrels, run: Run, metrics: tuple[str, ...] = METRICS) -> dict[str, float]:
    """Mean metrics over the judged queries; a query with no results scores 0."""
    per_query = evaluate_per_query(qrels, run, metrics)
    count = len(per_query)
    return {m: (sum(scores[m] for scores in per_query.values()) / count if count else 0.0) for m in metrics}


def is_coverage_metric(metric: str) -> bool:
    """judged@k: the share of a ranking's top k that has a judgment at all (any grade, 0 included)."""
    return metric.startswith("judged@")


def judged_at(judgments: Mapping[str, int], scores: Mapping[str, float], k: int) -> float:
    """Share of the run's top k (by score; ties keep the run's order) that the judgments cover.

    A figure with judged@10 below 1 rests partly on documents nobody judged, which count as not
    relevant: rankings that surface unjudged documents are scored down for it.
    """
    top = sorted(scores, key=lambda d: -scores[d])[:k]
    return sum(d in judgments for d in top) / len(top) if top else 0.0


def evaluate_per_query(qrels: Qrels, run: Run, metrics: tuple[str, ...] = METRICS) -> dict[str, dict[str, float]]:
    """Query id -> metric -> value, over queries that have at least one relevant judgment."""
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate

    judged = {q: docs for q, docs in qrels.items() if any(g > 0 for g in docs.values())}
    if not judged:
        return {}
    out: dict[str, dict[str, float]] = {q: {} for q in judged}
    for metric in (m for m in metrics if is_coverage_metric(m)):
        k = int(metric.split("@", 1)[1])
        for q, docs in judged.items():
            out[q][metric] = judged_at(docs, run.get(q) or {}, k)
    ranked = tuple(m for m in metrics if not is_coverage_metric(m))
    if not ranked:
        return out
    filled = {q: (run.get(q) or {"__no_result__": 0.0}) for q in judged}
    coded, filled = _fixed_width_ids(judged, filled)
    ranx_qrels = RanxQrels(coded)
    with RANX_LOCK:
        scores = evaluate(ranx_qrels, RanxRun(filled), list(ranked), return_mean=False, make_comparable=True)
    keys = list(judged)  # ranx keeps the qrels' query order
    for metric in ranked:
        values = scores[metric] if len(ranked) > 1 else scores
        for q, value in zip(keys, values, strict=True):
            out[q][metric] = float(value)
    return out


def _fixed_width_ids(qrels: Qrels, run: Run) -> tuple[Qrels, Run]:
    """The same judgments and run with every document id replaced by its sorted position, zero-padded.

    ranx keeps document ids as fixed-width numpy strings, and numba compiles its sorting again for
    every new width (~2 s each): equal widths compile once per process. Each dict keeps its order,
    so ranx breaks score ties (by the run's order) exactly as it would on the original ids.
    """
    ids = sorted({d for docs in qrels.values() for d in docs} | {d for docs in run.values() for d in docs})
    code = {d: f"{i:0{ID_WIDTH}d}" for i, d in enumerate(ids)}
    return (
        {q: {code[d]: g for d, g in docs.items()} for q, docs in qrels.items()},
        {q: {code[d]: s for d, s in docs.items()} for q, docs in run.items()},
    )


def warm_metrics() -> None:
    """Import ranx and compile its metrics (several seconds on a first call) before anyone waits for them."""
    qrels, run = {"q": {"a": 1, "c": 2}}, {"q": {"a": 1.0, "b": 0.5}}
    # ranx takes another code path (and numba compiles again) for one metric than for several.
    evaluate_per_query(qrels, run, ("ndcg@10",))
    evaluate_per_query(qrels, run, METRICS)


def mean_latency(results: Mapping[str, PipelineResult]) -> dict[str, float]:
    """Mean milliseconds per stage (model loading excluded)."""
    totals: dict[str, list[float]] = {}
    for result in results.values():
        for timing in result.timings:
            totals.setdefault(timing.stage, []).append(timing.ms)
    return {stage: sum(v) / len(v) for stage, v in totals.items()}
