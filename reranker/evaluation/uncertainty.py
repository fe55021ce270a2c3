"""How sure an evaluation is: paired bootstrap intervals, the minimum detectable effect and the queries an effect needs.

Bootstrap: the judged queries are resampled with replacement (Efron & Tibshirani, "An Introduction to the
Bootstrap", 1993); every configuration and every difference is averaged over the same resampled query sets,
so a difference's interval is paired (Sakai, "Evaluating evaluation metrics based on the bootstrap", SIGIR 2006).
Intervals are percentile intervals, seeded, so the same per-query values give the same interval.

Power: a two-sided paired test at level alpha with power 1 - beta detects a mean difference of
    MDE = (t[1 - alpha/2, n-1] + t[1 - beta, n-1]) * sd / sqrt(n)
where sd is the standard deviation of the per-query differences (the usual approximation to the noncentral t,
e.g. Sakai, "Statistical reform in information retrieval?", SIGIR Forum 2014). The queries an effect d needs is
the smallest n with MDE(n) <= d, keeping the observed sd.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
SEED = 20231
ALPHA = 0.05
POWER = 0.8
MAX_QUERIES_NEEDED = 10_000_000  # beyond this the answer is "more than anyone will judge"


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """`resamples` x `n` query indices drawn with replacement; the same (n, resamples, seed) gives the same draw."""
    if n < 1:
        return np.zeros((resamples, 0), dtype=np.int32)
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n), dtype=np.int32)


def bootstrap_interval(
    values: Sequence[float], *, indices: np.ndarray | None = None, level: float = 0.95, seed: int = SEED
) -> tuple[float, float]:
    """Percentile interval of the mean of `values` (per-query figures, or paired per-query differences).

    A percentile interval of the mean almost always holds the observed mean; with few, skewed values it can
    miss it by a hair, and then it is widened to reach it, so an interval never excludes its own estimate.
    One value (or none) gives a zero-width interval.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (0.0, 0.0)
    point = float(data.mean())
    if data.size == 1:
        return (point, point)
    draws = resample_indices(data.size, seed=seed) if indices is None else indices
    if draws.shape[1] != data.size:
        raise ValueError(f"the resampled indices are for {draws.shape[1]} queries, not {data.size}")
    means = data[draws].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return (min(float(lo), point), max(float(hi), point))


def _t(q: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(q, df))


def minimum_detectable_effect(sd: float, n: int, *, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The smallest mean difference a two-sided paired t-test at `alpha` finds with probability `power` over n
    queries whose differences have standard deviation `sd`; None below two queries."""
    if n < 2 or not math.isfinite(sd):
        return None
    return (_t(1 - alpha / 2, n - 1) + _t(power, n - 1)) * sd / math.sqrt(n)


def queries_needed(effect: float, sd: float, *, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """The fewest queries whose minimum detectable effect is at most `effect` (the observed sd kept);
    2 when the differences do not vary, None when the effect is 0 or the answer exceeds any judged set."""
    effect = abs(effect)
    if effect == 0 or not math.isfinite(sd):
        return None
    if sd == 0:
        return 2
    z = _normal(1 - alpha / 2) + _normal(power)
    n = max(2, math.ceil((z * sd / effect) ** 2))  # the normal answer: t needs a few more, never fewer
    if n > MAX_QUERIES_NEEDED:
        return None
    while minimum_detectable_effect(sd, n, alpha=alpha, power=power) > effect:  # type: ignore[operator]
        n += 1
    return n


def _normal(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


@dataclass(frozen=True)
class PairedEvidence:
    """A configuration against the baseline on one metric: the difference's interval and the test's power."""

    delta: float
    delta_ci95: tuple[float, float]
    sd: float
    queries: int
    mde: float | None
    effect: float
    queries_for_effect: int | None
    queries_for_observed: int | None


def paired_evidence(
    values: Sequence[float], baseline: Sequence[float], *, effect: float = 0.02, indices: np.ndarray | None = None
) -> PairedEvidence:
    """The paired difference `values - baseline` (same query order): its mean, bootstrap interval, the sd of the
    per-query differences, the MDE at this many queries and the queries `effect` and the observed difference need."""
    diff = np.asarray(values, dtype=float) - np.asarray(baseline, dtype=float)
    n = int(diff.size)
    sd = float(diff.std(ddof=1)) if n > 1 else float("nan")
    delta = float(diff.mean()) if n else 0.0
    return PairedEvidence(
        delta,
        bootstrap_interval(diff, indices=indices),
        sd,
        n,
        minimum_detectable_effect(sd, n),
        effect,
        queries_needed(effect, sd) if n > 1 else None,
        queries_needed(delta, sd) if n > 1 else None,
    )
