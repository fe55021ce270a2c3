"""Bounds for unjudged documents, bootstrap intervals, MDE, the judge-next queue, slices and calibration,
each on a hand-made case."""

from __future__ import annotations

import math

import pytest

from reranker.corpus import Corpus
from reranker.evaluation.analysis import QueryDelta
from reranker.evaluation.bounds import metric_bounds, per_query_bounds
from reranker.evaluation.calibration import calibrate
from reranker.evaluation.judge_next import judge_next_queue, ndcg_at
from reranker.evaluation.metrics import evaluate_per_query
from reranker.evaluation.slices import (
    CUT_BEFORE,
    CUT_PAST,
    FITS,
    lexical_overlap,
    query_features,
    slice_queries,
    truncation_label,
)
from reranker.evaluation.uncertainty import bootstrap_interval, minimum_detectable_effect, paired_evidence, queries_needed
from reranker.types import ChunkScore, Document, Hit, PipelineResult, RankedList


def test_bounds_count_unjudged_top_documents_as_not_relevant_then_as_top_grade():
    qrels = {"q": {"a": 2, "b": 0}}
    run = {"q": {"x": 3.0, "a": 2.0, "b": 1.0}}  # x is unjudged, ranked first
    low = 2 / math.log2(3) / 2  # a at rank 2 over an ideal of a alone (grade 2 at rank 1)
    high = (2 + 2 / math.log2(3)) / (2 + 2 / math.log2(3))  # x and a both grade 2: the ranking is ideal
    bounds = per_query_bounds(qrels, run, ("ndcg@10",))["q"]["ndcg@10"]
    assert bounds == pytest.approx((low, high))
    assert metric_bounds(qrels, run, ("ndcg@10", "mrr@10"))["mrr@10"] == pytest.approx((0.5, 1.0))
    # The minimum is the figure eval reports (unjudged = not relevant).
    assert bounds[0] == pytest.approx(evaluate_per_query(qrels, run, ("ndcg@10",))["q"]["ndcg@10"])


def test_bounds_order_the_two_figures_when_a_top_grade_would_lower_ndcg():
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 2.0, "x": 1.0}}  # perfect today; x at grade 1 below a keeps it perfect, at grade 2 it does not
    assert per_query_bounds(qrels, {"q": {"a": 2.0, "x": 1.0}}, ("ndcg@10",), grade=1)["q"]["ndcg@10"] == (1.0, 1.0)
    low, high = per_query_bounds(qrels, run, ("ndcg@10",), grade=2)["q"]["ndcg@10"]
    assert high == 1.0 and low == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))


def test_bounds_leave_documents_past_the_cutoff_alone():
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 2.0, "x": 1.0}}
    assert metric_bounds(qrels, run, ("ndcg@1",))["ndcg@1"] == pytest.approx((1.0, 1.0))


def test_own_ndcg_matches_ranx():
    qrels = {"q": {"a": 1, "b": 2, "c": 0, "d": 1}}
    ranking = ["c", "a", "x", "b", "d"]
    run = {"q": {d: float(10 - i) for i, d in enumerate(ranking)}}
    assert ndcg_at(qrels["q"], ranking, 10) == pytest.approx(evaluate_per_query(qrels, run, ("ndcg@10",))["q"]["ndcg@10"])


def test_bootstrap_interval_holds_its_mean_and_repeats_exactly():
    skewed = [0.0] * 9 + [1.0]
    for values in (skewed, [0.3, 0.9, 0.1, 0.5, 0.7], [0.42], [-0.2, 0.1, 0.0, 0.05]):
        lo, hi = bootstrap_interval(values)
        mean = sum(values) / len(values)
        assert lo <= mean <= hi
        assert bootstrap_interval(values) == (lo, hi)  # seeded
    assert bootstrap_interval([0.42]) == (0.42, 0.42)
    lo, hi = bootstrap_interval(skewed)
    assert 0.0 <= lo < 0.1 < hi <= 0.4


def test_minimum_detectable_effect_and_queries_needed_match_a_hand_computation():
    # t(0.975, 24) = 2.0639, t(0.8, 24) = 0.8569: MDE = (2.0639 + 0.8569) * 0.2 / sqrt(25) = 0.11683
    assert minimum_detectable_effect(0.2, 25) == pytest.approx(0.11683, abs=2e-4)
    # Normal approximation: ((1.95996 + 0.84162) * 0.2 / 0.05)^2 = 125.6 -> 126; the t quantiles ask for 2 more.
    assert queries_needed(0.05, 0.2) == 128
    assert minimum_detectable_effect(0.2, 128) <= 0.05 < minimum_detectable_effect(0.2, 127)
    assert minimum_detectable_effect(0.2, 1) is None and queries_needed(0.0, 0.2) is None
    evidence = paired_evidence([0.5, 0.7, 0.9, 0.6], [0.4, 0.4, 0.8, 0.6])
    assert evidence.delta == pytest.approx(0.125)  # differences 0.1, 0.3, 0.1, 0.0
    assert evidence.delta_ci95[0] <= evidence.delta <= evidence.delta_ci95[1]
    assert evidence.sd == pytest.approx(math.sqrt(0.0475 / 3))


def test_judge_next_orders_documents_by_how_far_their_grade_moves_the_comparison():
    qrels = {"q1": {"r": 1}, "q2": {"s": 1}}
    run_a = {"q1": {"u": 3.0, "r": 2.0}, "q2": {"s": 3.0, "v": 2.0, "w": 1.0}}
    run_b = {"q1": {"r": 3.0, "u": 2.0}, "q2": {"s": 3.0, "w": 2.0, "v": 1.0}}
    queue = judge_next_queue(qrels, run_a, run_b, k=10)
    # u: A ranks it first, B second: relevant, it lifts A's q1 far more than B's. v/w swap ranks 2 and 3 in q2.
    assert [(i.query_id, i.doc_id) for i in queue] == [("q1", "u"), ("q2", "v"), ("q2", "w")]
    g = 1 / math.log2(3)
    ideal = 1 + g
    expected_u = ((1 + g) / ideal - (g + 1) / ideal - (1 - g)) / 2  # (after - now) / N; now = 1 - g/1
    assert queue[0].swing == pytest.approx(expected_u)
    assert queue[0].swing < 0  # graded relevant, u favours A
    assert queue[1].swing == pytest.approx(-queue[2].swing)
    assert (queue[0].rank_a, queue[0].rank_b) == (1, 2)
    assert judge_next_queue(qrels, run_a, run_b, n=1) == queue[:1]


def _hit(doc_id, rank, chunks=(), deciding=None, truncated_at=None):
    return Hit(doc_id, rank, 1.0 / rank, "reranked", 0.5, tuple(chunks), deciding, truncated_at)


def _chunk(i, start, end):
    return ChunkScore(i, start, end, 0.0, i * 100, i * 100 + 100)


def test_truncation_label_says_whether_the_deciding_window_lies_past_the_cut():
    grades = {"long": 1}
    fits = PipelineResult("q", {"reranked": RankedList("reranked", (_hit("long", 1, [_chunk(0, 0, 50)], 0),), "")}, ())
    before = PipelineResult(
        "q", {"reranked": RankedList("reranked", (_hit("long", 1, [_chunk(0, 0, 450), _chunk(1, 400, 900)], 0, 480),), "")}, ()
    )
    past = PipelineResult(
        "q", {"reranked": RankedList("reranked", (_hit("long", 1, [_chunk(0, 0, 450), _chunk(1, 400, 900)], 1, 480),), "")}, ()
    )
    assert [truncation_label(r, grades) for r in (fits, before, past)] == [FITS, CUT_BEFORE, CUT_PAST]


def test_slices_group_queries_and_average_their_change():
    corpus = Corpus((Document("d1", "bm25 saturation term frequency"), Document("d2", "a long text " * 200)))
    deltas = [
        QueryDelta("q1", "bm25 saturation", 0.5, 0.7),  # 2 words, full overlap
        QueryDelta("q2", "why does the long text matter here", 0.8, 0.6),  # 7 words, partial overlap
        QueryDelta("q3", "bm25 term", 0.4, 0.5),  # 2 words
    ]
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 2}, "q3": {"d1": 1}}
    fused = RankedList("fused", (_hit("d2", 1), _hit("d1", 2)), "")
    results = {q: PipelineResult(q, {"fused": fused, "reranked": fused}, ()) for q in qrels}
    types = {"q1": "keyword", "q2": "question", "q3": "keyword"}
    features = query_features(deltas, results, qrels, corpus, types)
    assert features["q1"]["first relevant before reranking"] == "rank 2–3"
    assert features["q2"]["first relevant before reranking"] == "rank 1"
    assert features["q2"]["relevant document length"] == "301–1000 words"
    slices = {(s.feature, s.label): s for s in slice_queries(deltas, features)}
    keyword = slices["query type", "keyword"]
    assert (keyword.queries, keyword.helped, keyword.hurt) == (2, 2, 0)
    assert keyword.mean_delta == pytest.approx(0.15)
    assert keyword.ci95[0] <= keyword.mean_delta <= keyword.ci95[1]
    assert slices["query length", "1–2 words"].queries == 2
    assert slices["query length", "6–10 words"].mean_delta == pytest.approx(-0.2)
    assert slices["lexical overlap", "≥ 75%"].queries == 2
    assert lexical_overlap("why does the long text matter here", ["a long text"]) == pytest.approx(2 / 4)
    order = [s.feature for s in slice_queries(deltas, features)]
    assert order.index("query type") < order.index("query length") < order.index("first relevant before reranking")


def test_calibration_threshold_keeps_the_target_precision_with_the_most_recall():
    # Scores best first: relevant, relevant, not, relevant, not, not, relevant(unjudged -> not).
    pairs = [(0.95, 2), (0.9, 1), (0.8, 0), (0.7, 1), (0.4, 0), (0.2, 0), (0.1, None)]
    result = calibrate(pairs, target_precision=0.75)
    # Cut at 0.7 keeps 4 pairs, 3 relevant: precision 0.75, recall 3/3; lower cuts fall below 0.75.
    assert result.threshold == 0.7 and result.precision == pytest.approx(0.75) and result.recall == 1.0
    assert result.kept == 4 and result.unjudged == 1 and result.pairs == 7
    strict = calibrate(pairs, target_precision=1.0)
    assert strict.threshold == 0.9 and strict.recall == pytest.approx(2 / 3)
    bins = {round(b.lo, 1): b for b in result.bins}
    assert bins[0.9].pairs == 2 and bins[0.9].fraction_relevant == 1.0 and bins[0.9].mean_grade == 1.5
    assert calibrate([(0.5, 0)], target_precision=0.8).threshold is None
    assert calibrate(pairs, target_precision=0.75, judged_only=True).pairs == 6
