"""BoundedLRU, the one in-memory cache: bounded, least recently used out first, safe across threads."""

from __future__ import annotations

import threading

import pytest

from reranker.cache import BoundedLRU
from reranker.cross_encoder import ScoreCache
from reranker.evaluation.analysis import ReportCache


def test_the_least_recently_used_entry_goes_first():
    cache: BoundedLRU[str, int] = BoundedLRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True) and len(cache) == 2
    assert cache.get("b") is None and cache.get("b", -1) == -1
    cache.put("a", 10)  # a new value for a key is a use, not a second entry
    assert cache.get("a") == 10 and len(cache) == 2
    cache.clear()
    assert len(cache) == 0


def test_a_falsy_value_is_a_hit():
    cache: BoundedLRU[str, float] = BoundedLRU(1)
    cache.put("zero", 0.0)
    assert cache.get("zero", 1.0) == 0.0


def test_the_bound_holds_under_concurrent_writers():
    cache: BoundedLRU[tuple[int, int], int] = BoundedLRU(50)

    def write(worker: int) -> None:
        for i in range(2_000):
            cache.put((worker, i), i)
            cache.get((worker, i - 1))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 50


def test_the_package_caches_are_bounded_lrus():
    assert isinstance(ScoreCache(), BoundedLRU) and ScoreCache().max_entries == 200_000
    assert isinstance(ReportCache(), BoundedLRU) and ReportCache(3).max_entries == 3
    with pytest.raises(ValueError):
        BoundedLRU(0)


def test_no_module_of_the_package_holds_a_cache():
    """Caches belong to objects (a pipeline's score cache, the app's report cache), bounded and gone with their
    owner: one at module level would be shared by every visitor of a server and live as long as the process."""
    import importlib
    import pkgutil

    import reranker

    held = []
    for module in pkgutil.walk_packages(reranker.__path__, "reranker."):
        if module.name.endswith("__main__"):  # runs the command line
            continue
        try:
            loaded = importlib.import_module(module.name)
        except ImportError:  # an optional extra this environment lacks: that module cannot hold anything here
            continue
        held += [f"{module.name}.{name}" for name, value in vars(loaded).items() if isinstance(value, BoundedLRU)]
    assert held == []
