from __future__ import annotations

import pytest

from reranker.fusion import blend, interpolate, reciprocal_rank_fusion, zscores
from tests.support import ranked


def test_rrf_golden_values_and_explanations():
    bm25 = ranked("bm25", ["a", "b", "c"])
    dense = ranked("dense", ["b", "d", "a"])
    fused = reciprocal_rank_fusion({"bm25": bm25, "dense": dense}, k=60)
    expected = {
        "a": 1 / 61 + 1 / 63,
        "b": 1 / 62 + 1 / 61,
        "c": 1 / 63,
        "d": 1 / 62,
    }
    assert fused.doc_ids() == ["b", "a", "d", "c"]
    for hit in fused:
        assert hit.score == pytest.approx(expected[hit.doc_id])
        assert sum(s.contribution for s in hit.sources.values()) == pytest.approx(hit.score)
    assert fused.get("a").sources["dense"].rank == 3
    assert fused.get("d").sources.keys() == {"dense"}


def test_weighted_rrf_and_depth():
    bm25 = ranked("bm25", ["a", "b"])
    dense = ranked("dense", ["b", "a"])
    fused = reciprocal_rank_fusion({"bm25": bm25, "dense": dense}, k=0, weights={"bm25": 3.0}, depth=1)
    assert fused.doc_ids() == ["a"]
    assert fused.hits[0].score == pytest.approx(3 / 1 + 1 / 2)


def test_rrf_does_not_mutate_inputs_and_breaks_ties_deterministically():
    bm25 = ranked("bm25", ["x"])
    dense = ranked("dense", ["y"])
    before = (bm25.hits, dense.hits)
    fused = reciprocal_rank_fusion({"bm25": bm25, "dense": dense})
    assert (bm25.hits, dense.hits) == before
    assert fused.doc_ids() == ["x", "y"]  # equal scores, equal best rank: by id


def test_zscores_guard_constant_input():
    assert zscores([2.0, 2.0]) == [0.0, 0.0]
    assert zscores([1.0, 3.0]) == [-1.0, 1.0]


def test_blend_mixes_and_relabels():
    fused = ranked("fused", ["a", "b", "c"], [3.0, 2.0, 1.0])
    reranked = ranked("reranked", ["c", "b", "a"], [5.0, 4.9, 0.0])
    assert blend(reranked, fused, 0.0) is reranked
    half = blend(reranked, fused, 0.5)
    assert half.doc_ids()[0] == "b"  # strong in both beats strong in one
    assert "z(fused)" in half.score_label
    assert blend(reranked, fused, 1.0).doc_ids() == ["a", "b", "c"]
    with pytest.warns(DeprecationWarning, match="fusion.blend"):  # the old name, for one release
        assert interpolate(reranked, fused, 1.0).doc_ids() == ["a", "b", "c"]
    with pytest.raises(ValueError):
        blend(reranked, fused, 1.5)
