from __future__ import annotations

import pytest

from reranker.evaluation.compare import kendall_tau, movement, rank_biased_overlap, top_k_overlap
from tests.support import ranked


def test_movements_within_and_across_the_top_n():
    before = ranked("fused", ["a", "b", "c", "d"])
    after = ranked("reranked", ["c", "a", "d", "b"])
    assert movement("c", before, after, top_n=4).label == "▲ 2"
    assert movement("b", before, after, top_n=4).label == "▼ 2"
    assert movement("d", before, after, top_n=2).label == "▲ 1"  # outside the top-n both times
    assert movement("c", before, after, top_n=2).label == "★ new (was 3)"
    assert movement("b", before, after, top_n=2).label == "✖ dropped (now 4)"


def test_documents_past_the_rerank_depth_are_unscored_not_dropped():
    before = ranked("fused", ["a", "b", "c", "d"])
    after = ranked("reranked", ["b", "a"])  # only the top 2 were reranked (a budget or a shallow depth)
    assert movement("c", before, after, top_n=3).kind == "unscored"
    assert movement("c", before, after, top_n=3).label == "· not reranked"
    assert movement("d", before, after, top_n=3).kind == "same"  # outside the top-n: nothing to say
    assert movement("b", before, after, top_n=3).label == "▲ 1"


def test_agreement_measures():
    a, b = ["a", "b", "c", "d"], ["a", "b", "c", "d"]
    assert top_k_overlap(a, b, 2) == 1.0 and kendall_tau(a, b) == pytest.approx(1.0)
    assert kendall_tau(a, list(reversed(a))) == pytest.approx(-1.0)
    assert top_k_overlap(a, ["x", "a"], 2) == 0.5
    assert rank_biased_overlap(a, b) == pytest.approx(1.0)
    assert rank_biased_overlap(a, ["w", "x", "y", "z"]) == 0.0
    assert 0 < rank_biased_overlap(a, ["b", "a", "d", "c"]) < 1
