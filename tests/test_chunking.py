from __future__ import annotations

import pytest

from reranker.chunking import aggregate, token_windows


def offsets(n):
    return [(i * 2, i * 2 + 1) for i in range(n)]


def test_windows_overlap_and_cover_the_end():
    windows = token_windows(offsets(10), size=4, overlap=1)
    assert [(w.token_start, w.token_end) for w in windows] == [(0, 4), (3, 7), (6, 10)]
    assert windows[-1].end == 19 and windows[1].start == 6


def test_short_text_is_one_window_and_empty_text_is_one_empty_window():
    assert len(token_windows(offsets(3), 4, 1)) == 1
    assert token_windows([], 4, 1)[0].end == 0


def test_invalid_window_settings():
    with pytest.raises(ValueError):
        token_windows(offsets(3), 0, 0)
    with pytest.raises(ValueError):
        token_windows(offsets(3), 4, 4)


def test_aggregations_and_deciding_window():
    assert aggregate([0.1, 0.9, 0.3], "max") == (0.9, 1)
    assert aggregate([0.1, 0.9, 0.3], "first") == (0.1, 0)
    assert aggregate([0.0, 0.9, 0.3], "mean")[0] == pytest.approx(0.4)
    with pytest.raises(ValueError):
        aggregate([], "max")
