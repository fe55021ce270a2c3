"""Scoring deferred to another engine: the pairs each query needs, gathered into jobs, scored elsewhere, then
the queries run again and find every score in the score cache.

A query runs its ordinary code (`RerankStages.rerank`, `Pipeline.search`) with a `Deferral` active: where the
cross-encoder would run its model on pairs the cache lacks (`CrossEncoderReranker._score_pairs`), it hands
them over as one `PairJob` and stops with `ScoresPending`. `run_in_rounds` collects the jobs of many queries,
has an engine score them (`score_jobs`), puts the scores in the cache, and runs the waiting queries again:
one round per cross-encoder stage (two for a cascade), then one that completes them all.

A job is exactly the pairs the query would have scored itself at that point, in the same order: the pairs
neither cached nor already in an earlier query's job of the round (as the local loop would have cached them
by then). The engine scores each job with one `model_scores` call, so its model batches are the local ones
and fp32 scores are identical bit for bit; a different batching changes logits by ~1e-6, enough to reorder
a TREC run's written scores.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import numpy as np

from reranker.cross_encoder_settings import CrossEncoderSettings

logger = logging.getLogger(__name__)

K = TypeVar("K")
R = TypeVar("R")
# Pairs gathered before a round is scored: bounded so every score is still in the LRU score cache
# (200,000 entries) when its query runs again, and a round's token ids stay small (~100 MB at 300 tokens a pair).
ROUND_PAIRS = 50_000
# A query needs one round per cross-encoder stage and one more to finish; more means scores went missing.
MAX_ROUNDS = 8


@dataclass(frozen=True)
class ScorerSpec:
    """How to load a cross-encoder elsewhere so that it scores exactly as the local one.

    Attributes:
        model: The model spec as given (a hub id, a project model's name, a local directory).
        path: Where it resolved on this machine; a worker that has this directory loads it, else `model`.
        settings: The cross-encoder's settings, its max_length and precision as resolved on this machine (a
            worker keeps them and picks its own device).
        by_ids: Jobs carry token ids (the model reads those), not texts.
        blas: This process's MKL_CBWR (MKL's reproducibility mode; strict makes fp32 products independent of the
            thread count); a worker sets the same before its first matrix product.
    """

    model: str
    path: str
    settings: CrossEncoderSettings
    by_ids: bool = True
    blas: str | None = None


@dataclass(frozen=True)
class PairJob:
    """One query's (query, window) pairs for one model, as one `model_scores` call scores them.

    `pairs` are the texts (they key the score cache, and the model reads them when `spec.by_ids` is false);
    `pair_ids` the (query ids, window ids) of each pair when the model reads ids."""

    spec: ScorerSpec
    pairs: tuple[tuple[str, str], ...]
    pair_ids: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] | None = None

    def __len__(self) -> int:
        return len(self.pairs)


class ScoresPending(Exception):  # a signal, not an error: the query runs again once its pairs are scored
    """Raised inside a query whose pairs were handed to another engine; `run_in_rounds` runs it again."""


class Cache(Protocol):
    def put(self, key: tuple[str, str, str], value: float) -> None: ...


class Deferral:
    """The jobs of one round, each with the cache and key its scores go to."""

    def __init__(self) -> None:
        self.jobs: list[tuple[PairJob, Cache, str]] = []
        self._pending: set[tuple[str, str, str]] = set()

    @property
    def pairs(self) -> int:
        return sum(len(job) for job, _, _ in self.jobs)

    def defer(self, job: PairJob, cache: Cache, cache_key: str) -> None:
        """Take a query's uncached pairs (less those an earlier job of the round holds) and stop the query."""
        keep = [i for i, pair in enumerate(job.pairs) if (cache_key, *pair) not in self._pending]
        self._pending.update((cache_key, *job.pairs[i]) for i in keep)
        if keep:
            ids = tuple(job.pair_ids[i] for i in keep) if job.pair_ids is not None else None
            self.jobs.append((replace(job, pairs=tuple(job.pairs[i] for i in keep), pair_ids=ids), cache, cache_key))
        raise ScoresPending

    def store(self, scores: Sequence[np.ndarray]) -> None:
        """Put each job's scores in its cache, where the query finds them when it runs again."""
        for (job, cache, key), values in zip(self.jobs, scores, strict=True):
            if len(values) != len(job):
                raise RuntimeError(f"an engine returned {len(values)} scores for a job of {len(job)} pairs")
            for (query, text), value in zip(job.pairs, values, strict=True):
                cache.put((key, query, text), float(value))


_ACTIVE: contextvars.ContextVar[Deferral | None] = contextvars.ContextVar("rerank_lens_deferral", default=None)


def active_deferral() -> Deferral | None:
    """The deferral queries are running under, or None: score in this process."""
    return _ACTIVE.get()


@contextlib.contextmanager
def deferring(deferral: Deferral) -> Iterator[Deferral]:
    token = _ACTIVE.set(deferral)
    try:
        yield deferral
    finally:
        _ACTIVE.reset(token)


_WAITING: Any = object()


def run_in_rounds(
    calls: Iterable[tuple[K, Callable[[], R]]],
    score_jobs: Callable[[list[PairJob]], Sequence[np.ndarray]],
    *,
    round_pairs: int = ROUND_PAIRS,
    max_rounds: int = MAX_ROUNDS,
) -> Iterator[tuple[K, R]]:
    """Each call's key and result, in order, with every cross-encoder pair scored by `score_jobs` (a list of
    jobs -> their raw scores, in order), many queries' pairs at a time.

    Calls are taken until their jobs hold `round_pairs` pairs; those calls then go round by round until all
    have finished, and their results are yielded before the next calls start."""
    calls = iter(calls)
    while True:
        deferral = Deferral()
        chunk: list[list[Any]] = []
        for key, call in calls:
            chunk.append([key, call, _attempt(call, deferral)])
            if deferral.pairs >= round_pairs:
                break
        if not chunk:
            return
        rounds = 0
        while any(entry[2] is _WAITING for entry in chunk):
            rounds += 1
            if rounds > max_rounds:
                raise RuntimeError(
                    f"queries still waited for scores after {max_rounds} rounds: scored pairs were not found in the "
                    "score cache again (was it cleared or too small?)"
                )
            jobs = [job for job, _, _ in deferral.jobs]
            if jobs:
                logger.info("round %d: scoring %d pairs of %d jobs", rounds, deferral.pairs, len(jobs))
                deferral.store(score_jobs(jobs))
            deferral = Deferral()
            for entry in chunk:
                if entry[2] is _WAITING:
                    entry[2] = _attempt(entry[1], deferral)
        for key, _, result in chunk:
            yield key, result


def _attempt(call: Callable[[], Any], deferral: Deferral) -> Any:
    with deferring(deferral):
        try:
            return call()
        except ScoresPending:
            return _WAITING
