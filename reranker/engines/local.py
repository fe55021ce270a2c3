"""The local engine: every query runs in this process, one after another, and scores its own pairs as it
goes (the path the app and the CLI have always taken)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

K = TypeVar("K")
R = TypeVar("R")


class LocalEngine:
    name = "local"

    def run(self, calls: Iterable[tuple[K, Callable[[], R]]]) -> Iterator[tuple[K, R]]:
        """Each call's key and result, in order; the cross-encoder scores in this process."""
        for key, call in calls:
            yield key, call()

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
