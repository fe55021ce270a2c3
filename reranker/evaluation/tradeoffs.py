"""Trade-offs: ranking quality against latency over rerank depth, model and blend, on a split's judged queries.

How a sweep measures (docs/evaluation.md, "Trade-offs", says the same for readers):

- First stage. Each query runs BM25, dense retrieval and RRF once; their wall time is part of every
  configuration's latency, the no-reranking one (depth 0) included.
- Scoring, once. Per model and query, the cross-encoder reranks the fused list at each swept depth, the
  shallowest first, through a `PairLedger`: a score cache private to the sweep (the app's shared score
  cache is never read). A (query, window) pair is scored by the model the first time a depth needs it and
  never again: a deeper depth scores only the windows it adds, and every blend, and a cascade's fine model,
  reuse those raw scores.
- Latency. Each rerank call is timed (planning, tokenisation and model passes); its time is shared among
  the pairs it scored, in proportion to their length in characters. A configuration's time for a query is
  the first stage's time plus the cost of every pair it reads (a cascade also reads its coarse model's
  pairs). p50 and p95 are over the queries. Model loading and a warm-up pass are kept out.
- Quality. The lists are built by the pipeline's own functions (`CrossEncoderReranker.rerank`,
  `fusion.blend`, `metrics.stage_run`) and scored by ranx as `eval` scores them, so a derived
  configuration equals `eval` of the same configuration.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from reranker.cache import BoundedLRU
from reranker.corpus import Qrels
from reranker.cross_encoder import CrossEncoderReranker, ScoreCache
from reranker.errors import ConfigError
from reranker.evaluation.analysis import Configuration, EvaluationCancelled, score_configurations
from reranker.evaluation.metrics import evaluate_per_query, stage_run
from reranker.fusion import blend as blend_lists
from reranker.models import PROJECT_MODELS
from reranker.pipeline import Pipeline, PipelineConfig, resolve_cross_encoder_spec
from reranker.project_models import OFFLINE_FAMILY
from reranker.speed import cpu_model, physical_cores
from reranker.types import PipelineResult, RankedList

logger = logging.getLogger(__name__)

DEFAULT_DEPTHS = (0, 10, 20, 30, 50, 100)
DEFAULT_BLENDS = (0.0, 0.5)
QUALITY = "ndcg@10"
RECALL = "recall@10"
SWEEP_METRICS = (QUALITY, RECALL)
NO_RERANKING = "fused"  # the model of the depth-0 point: the fused list, no cross-encoder
CASCADE = "cascade:"
MAX_DEPTH = 1000
MAX_MODELS = 8
TEST_NAMES = {"student": "two-sided paired t-test", "fisher": "paired randomization test"}
Key = tuple[str, str, str]  # the score cache's (model and precision, query, window text)


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class SweepSettings:
    """What a sweep varies: cross-encoders (`cascade:COARSE+FINE` for a cascade), rerank depths (0: no
    reranking), blend weights (`PipelineConfig.blend`), and the latency budget of the recommendation.

    `coarse_depth` is how many fused candidates a cascade's coarse model scores (None: the deepest depth)."""

    models: tuple[str, ...]
    depths: tuple[int, ...] = DEFAULT_DEPTHS
    blends: tuple[float, ...] = DEFAULT_BLENDS
    budget_ms: float | None = None
    coarse_depth: int | None = None

    def validate(self) -> None:
        if not self.depths:
            raise ConfigError("give at least one rerank depth, e.g. 0,10,20,30,50,100")
        if any(d < 0 or d > MAX_DEPTH for d in self.depths):
            raise ConfigError(f"rerank depths must be between 0 (no reranking) and {MAX_DEPTH}, not {list(self.depths)}")
        if any(d > 0 for d in self.depths) and not self.models:
            raise ConfigError("name at least one cross-encoder to rerank with, or sweep depth 0 only")
        if len(self.models) > MAX_MODELS:
            raise ConfigError(f"at most {MAX_MODELS} models in one sweep (got {len(self.models)})")
        if not self.blends or any(not 0.0 <= b <= 1.0 for b in self.blends):
            raise ConfigError(f"blend weights must be between 0 (cross-encoder only) and 1, not {list(self.blends)}")
        if self.budget_ms is not None and not (self.budget_ms > 0 and math.isfinite(self.budget_ms)):
            raise ConfigError(f"the latency budget must be a positive number of milliseconds, not {self.budget_ms}")
        if self.coarse_depth is not None and self.coarse_depth < 1:
            raise ConfigError(f"a cascade's coarse depth must be at least 1, not {self.coarse_depth}")
        for spec in self.models:
            parse_model(spec)

    @property
    def reranking_depths(self) -> tuple[int, ...]:
        return tuple(sorted({d for d in self.depths if d > 0}))


def parse_model(spec: str) -> tuple[str | None, str]:
    """(coarse model or None, fine model) of a sweep's model spec: `MODEL` or `cascade:COARSE+FINE`."""
    text = (spec or "").strip()
    if not text or text.lower() in {"none", "off", NO_RERANKING}:
        raise ConfigError(f"{spec!r} is not a cross-encoder; depth 0 already measures the fused list without one")
    if text.lower().startswith(CASCADE):
        coarse, plus, fine = text[len(CASCADE) :].partition("+")
        if not plus or not coarse.strip() or not fine.strip():
            raise ConfigError(f"{spec!r}: a cascade is cascade:COARSE+FINE, two models")
        return coarse.strip(), fine.strip()
    return None, text.removeprefix("rerank:").strip()


def default_models(picked: str | None = None, coarse: str | None = None) -> tuple[str, ...]:
    """The project's offline family (the models that resolve here), its cascade (the fast sibling before
    the default, or `coarse` before it), and `picked` when it is another model."""
    family = [m.name for m in OFFLINE_FAMILY if m.name in PROJECT_MODELS]
    models = list(family)
    fine = family[0] if family else None
    picked = resolve_cross_encoder_spec(picked) if picked else None
    if picked and picked not in models:
        models.append(picked)
        fine = fine or picked
    coarse = coarse or (family[1] if len(family) > 1 else None)
    if fine and coarse and coarse != fine:
        models.append(f"{CASCADE}{coarse}+{fine}")
    return tuple(models)


def parse_numbers(text: str | Sequence, kind: type, what: str) -> tuple:
    """Numbers from a comma- or space-separated string (or a sequence): `10,20 50` -> (10, 20, 50)."""
    parts = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    try:
        values = tuple(kind(float(p)) if kind is int and float(p).is_integer() else kind(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be numbers separated by commas, e.g. {'0,10,20' if kind is int else '0,0.5'}") from None
    return tuple(dict.fromkeys(values))


# ---------------------------------------------------------------- the ledger


class PairLedger(ScoreCache):
    """The sweep's score cache: every pair's raw score, what scoring it cost, and which pairs each call read.

    A `CrossEncoderReranker` built over it reads every pair it needs here first and scores only the missing
    ones, so no pair is scored twice; `rescored` counts pairs scored again (it stays 0 unless the ledger
    overflows its bound)."""

    def __init__(self, max_entries: int = 2_000_000) -> None:
        super().__init__(max_entries)
        self.cost_ms: dict[Key, float] = {}
        self.rescored = 0
        self._reads: list[Key] = []
        self._fresh: list[Key] = []

    def get(self, key: Key) -> float | None:
        self._reads.append(key)
        return super().get(key)

    def put(self, key: Key, value: float) -> None:
        if key in self.cost_ms:
            self.rescored += 1
        self._fresh.append(key)
        super().put(key, value)

    @property
    def pairs_scored(self) -> int:
        return len(self.cost_ms)

    @contextlib.contextmanager
    def measure(self) -> Iterator[list[Key]]:
        """Time one rerank call: the call's time is shared among the pairs it scored, in proportion to their
        characters; yields the list the keys the call read are put into."""
        read: list[Key] = []
        self._reads, self._fresh = [], []
        start = time.perf_counter()
        try:
            yield read
        finally:
            elapsed = (time.perf_counter() - start) * 1000
            sizes = [len(k[1]) + len(k[2]) + 1 for k in self._fresh]
            total = sum(sizes)
            for key, size in zip(self._fresh, sizes, strict=True):
                self.cost_ms[key] = self.cost_ms.get(key, 0.0) + elapsed * size / total
            read.extend(dict.fromkeys(self._reads))
            self._reads, self._fresh = [], []

    def cost_of(self, keys: Sequence[Key]) -> float:
        return sum(self.cost_ms.get(k, 0.0) for k in keys)


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Point:
    """One configuration of the sweep: mean quality over the judged queries and latency per query."""

    model: str
    depth: int
    blend: float
    ndcg: float
    recall: float
    p50_ms: float
    p95_ms: float

    @property
    def key(self) -> tuple[str, int, float]:
        return (self.model, self.depth, self.blend)

    @property
    def label(self) -> str:
        if self.depth == 0:
            return "fused (no reranking)"
        blend = f", blend {self.blend:g}" if self.blend else ""
        return f"{short_model(self.model)} @ {self.depth}{blend}"

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "depth": self.depth,
            "blend": self.blend,
            QUALITY: round(self.ndcg, 6),
            RECALL: round(self.recall, 6),
            "p50_ms": round(self.p50_ms, 2),
            "p95_ms": round(self.p95_ms, 2),
        }


@dataclass(frozen=True)
class Recommendation:
    """The best configuration within the budget, and what it gives up against the best one overall: the
    loss in nDCG@10 and that loss's paired test over the queries (`stat_test`, as in `eval`)."""

    point: Point
    best: Point
    loss: float
    p_value: float | None
    significant: bool
    wins: int
    ties: int
    losses: int
    stat_test: str = "student"
    max_p: float = 0.05

    def as_dict(self) -> dict[str, object]:
        return {
            **self.point.as_dict(),
            "best_overall": self.best.as_dict(),
            "loss": {
                QUALITY: round(self.loss, 6),
                "p_value": None if self.p_value is None else round(self.p_value, 6),
                "significant": self.significant,
                "test": f"{TEST_NAMES.get(self.stat_test, self.stat_test)} over queries (ranx), significant at "
                f"p < {self.max_p:g}",
                "queries_better_same_worse": [self.wins, self.ties, self.losses],
            },
        }


@dataclass(frozen=True)
class SweepResult:
    """Every point of a sweep, its Pareto front, the recommendation (or why there is none) and the machine."""

    dataset: str
    split: str
    settings: SweepSettings
    points: tuple[Point, ...]
    front: tuple[Point, ...]
    recommendation: Recommendation | None
    reason: str
    machine: Mapping[str, object]
    queries: int
    pairs_scored: int
    coarse_depth: int | None
    wall_s: float
    per_query: Mapping[tuple, Mapping[str, float]] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "queries": self.queries,
            "points": [p.as_dict() for p in self.points],
            "front": [p.as_dict() for p in self.front],
            "recommendation": self.recommendation.as_dict() if self.recommendation else None,
            "reason": self.reason,
            "budget_ms": self.settings.budget_ms,
            "machine": dict(self.machine),
            "measurement": {
                "pairs_scored": self.pairs_scored,
                "cascade_coarse_depth": self.coarse_depth,
                "wall_s": round(self.wall_s, 1),
                "latency": "per query: first stage (BM25, dense, RRF) + the measured cost of the pairs the configuration "
                "reads; each pair scored once, score cache off",
            },
        }


def short_model(spec: str) -> str:
    """A model spec for a chart's legend: the last path part, cascades as COARSE→FINE."""
    coarse, fine = parse_model(spec) if spec != NO_RERANKING else (None, spec)
    name = fine.rstrip("/").rsplit("/", 1)[-1]
    return f"{coarse.rstrip('/').rsplit('/', 1)[-1]}→{name}" if coarse else name


# ---------------------------------------------------------------- the sweep


Progress = Callable[[int, int, str], None]


def sweep(
    pipeline: Pipeline,
    queries: Mapping[str, str],
    qrels: Qrels,
    settings: SweepSettings,
    *,
    dataset: str = "",
    split: str = "",
    stat_test: str = "student",
    max_p: float = 0.05,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SweepResult:
    """Measure every configuration of `settings` on the judged queries (see the module's docstring for how).

    Raises ConfigError for bad settings or no judged query, ModelUnavailableError for a model that resolves
    nowhere, and EvaluationCancelled when `should_stop` (polled between queries) says so."""
    settings.validate()
    started = time.perf_counter()
    judged = {q: t for q, t in queries.items() if any(g > 0 for g in qrels.get(q, {}).values())}
    if not judged:
        raise ConfigError("none of the queries has a relevant judgment: add qrels (query-id, corpus-id, grade > 0) for them")
    qrels = {q: qrels[q] for q in judged}
    specs = {spec: _resolved(spec) for spec in dict.fromkeys(settings.models)}
    depths = settings.reranking_depths if specs else ()
    cascades = any(coarse for coarse, _ in specs.values())
    coarse_depth = (settings.coarse_depth or max(depths)) if depths and cascades else None
    config = pipeline.config
    ledger = PairLedger()
    rerankers = {m: _reranker(m, config, ledger) for pair in specs.values() for m in pair if m} if depths else {}
    _warm_up(pipeline, next(iter(judged.values())), rerankers.values())

    results: dict[tuple, dict[str, PipelineResult]] = {}
    latency: dict[tuple, dict[str, float]] = {}
    for done, (qid, text) in enumerate(judged.items()):
        if should_stop and should_stop():
            raise EvaluationCancelled(f"stopped after {done} of {len(judged)} queries")
        first = pipeline.search(text, cross_encoder=None, coarse_cross_encoder=None)
        first_ms = sum(t.ms for t in first.timings)
        fused = first.stages["fused"]
        head = {s: first.stages[s] for s in ("bm25", "dense", "fused")}
        if 0 in settings.depths:
            results.setdefault((NO_RERANKING, 0, 0.0), {})[qid] = first
            latency.setdefault((NO_RERANKING, 0, 0.0), {})[qid] = first_ms
        lists = _rerank_all(pipeline, first.query, fused, specs, rerankers, depths, coarse_depth, ledger)
        for spec, by_depth in lists.items():
            for depth, (stages, keys) in by_depth.items():
                ms = first_ms + ledger.cost_of(keys)
                for blend in settings.blends:
                    blended = {**stages, "reranked": blend_lists(stages["reranked"], fused, blend)}
                    result = PipelineResult(first.query, {**head, **blended}, first.timings, (), config.top_n)
                    results.setdefault((spec, depth, blend), {})[qid] = result
                    latency.setdefault((spec, depth, blend), {})[qid] = ms
        if progress:
            progress(done + 1, len(judged), f"query {qid}")
    if ledger.rescored:
        logger.warning("%d pairs were scored twice (the ledger overflowed); their latency counts once", ledger.rescored)

    points, per_query = [], {}
    for key, by_query in results.items():
        stage = "fused" if key[1] == 0 else "reranked"
        scores = evaluate_per_query(qrels, stage_run(by_query, stage), SWEEP_METRICS)
        per_query[key] = {q: scores[q][QUALITY] for q in scores}
        times = [latency[key][q] for q in judged]
        points.append(
            Point(key[0], key[1], key[2], _mean(v[QUALITY] for v in scores.values()), _mean(v[RECALL] for v in scores.values()),
                  float(np.percentile(times, 50)) if times else 0.0, float(np.percentile(times, 95)) if times else 0.0)
        )  # fmt: skip
    front = pareto_front(points)
    recommendation, reason = recommend(points, settings.budget_ms, results, judged, qrels, stat_test=stat_test, max_p=max_p)
    device = next(iter(rerankers.values())).device if rerankers else "cpu"
    return SweepResult(
        dataset, split, settings, tuple(points), tuple(front), recommendation, reason, machine(device), len(judged),
        ledger.pairs_scored, coarse_depth, time.perf_counter() - started, per_query,
    )  # fmt: skip


def _resolved(spec: str) -> tuple[str | None, str]:
    coarse, fine = parse_model(spec)
    resolved = resolve_cross_encoder_spec(fine)
    if resolved is None:
        raise ConfigError("no cross-encoder is available offline for 'auto'; name a model (a local directory or hub id)")
    return (resolve_cross_encoder_spec(coarse) if coarse else None), resolved


def _reranker(spec: str, config: PipelineConfig, ledger: PairLedger) -> CrossEncoderReranker:
    """The cross-encoder stage as the pipeline builds it (`RerankStages.reranker`), over the sweep's ledger."""
    return CrossEncoderReranker(spec, config.cross_encoder_settings(), cache=ledger)


def _warm_up(pipeline: Pipeline, query: str, rerankers) -> None:
    """One first-stage search and one model pass each, untimed: lazy initialisation is not a query's cost."""
    pipeline.search(query, cross_encoder=None, coarse_cross_encoder=None)
    for reranker in rerankers:
        reranker.model_scores([(query, query)])


def _rerank_all(pipeline, query, fused, specs, rerankers, depths, coarse_depth, ledger):
    """spec -> depth -> (stages written by reranking, the ledger keys they read), shallowest depth first."""
    corpus = pipeline.corpus
    out: dict[str, dict[int, tuple[dict[str, RankedList], list[Key]]]] = {}
    fine_lists: dict[tuple[str, int], tuple[RankedList, list[Key]]] = {}
    for fine in dict.fromkeys(f for c, f in specs.values() if c is None):  # plain models first, depth by depth
        for depth in depths:
            with ledger.measure() as keys:
                ranked = rerankers[fine].rerank(query, fused, corpus, depth=_clamp(depth, len(fused))).ranked
            fine_lists[fine, depth] = (ranked, keys)
    for spec, (coarse, fine) in specs.items():
        out[spec] = {}
        if coarse is None:
            for depth in depths:
                ranked, keys = fine_lists[fine, depth]
                out[spec][depth] = ({"reranked": ranked}, keys)
            continue
        with ledger.measure() as coarse_keys:
            coarse_list = rerankers[coarse].rerank(query, fused, corpus, depth=_clamp(coarse_depth, len(fused)), stage="coarse")
        for depth in depths:
            with ledger.measure() as keys:
                ranked = rerankers[fine].rerank(query, coarse_list.ranked, corpus, depth=_clamp(depth, len(coarse_list.ranked)))
            out[spec][depth] = ({"coarse": coarse_list.ranked, "reranked": ranked.ranked}, [*coarse_keys, *keys])
    return out


def _clamp(depth: int, available: int) -> int:
    """The depth the pipeline uses (`RerankStages._clamp`): at most what is available, at least 1."""
    return max(available, 1) if depth > available else depth


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


# ---------------------------------------------------------------- front and recommendation


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both axes (higher nDCG@10 at no more p50 latency), fastest first."""
    ordered = sorted(points, key=lambda p: (p.p50_ms, -p.ndcg))
    front: list[Point] = []
    for point in ordered:
        if not front or point.ndcg > front[-1].ndcg:
            front.append(point)
    return front


def best_point(points: Sequence[Point]) -> Point:
    """Highest nDCG@10; among equals the faster one (then the shallower, then the smaller blend)."""
    return min(points, key=lambda p: (-p.ndcg, p.p50_ms, p.depth, p.blend, p.model))


def recommend(
    points: Sequence[Point],
    budget_ms: float | None,
    results: Mapping[tuple, Mapping[str, PipelineResult]],
    queries: Mapping[str, str],
    qrels: Qrels,
    *,
    stat_test: str = "student",
    max_p: float = 0.05,
) -> tuple[Recommendation | None, str]:
    """The best point whose p50 fits the budget (the best overall without one), its loss against the best
    overall with the paired test `eval` uses (`analysis.score_configurations`), and a sentence saying why."""
    if not points:
        return None, "the sweep produced no configuration"
    best = best_point(points)
    fitting = [p for p in points if budget_ms is None or p.p50_ms <= budget_ms]
    if not fitting:
        fastest = min(points, key=lambda p: p.p50_ms)
        return None, (
            f"nothing fits a p50 budget of {budget_ms:g} ms on this machine: the fastest configuration, "
            f"{fastest.label}, takes {fastest.p50_ms:.0f} ms per query (p50)"
        )
    pick = best_point(fitting)
    if pick.key == best.key:
        within = f"within the {budget_ms:g} ms budget" if budget_ms is not None else "with no budget"
        return Recommendation(pick, best, 0.0, None, False, 0, len(queries), 0, stat_test, max_p), (
            f"{pick.label} is the best configuration overall, {within} (p50 {pick.p50_ms:.0f} ms)"
        )
    configs = [Configuration("best", _stage(best)), Configuration("pick", _stage(pick))]
    raw = {"best": (results[best.key], None, None), "pick": (results[pick.key], None, None)}
    report = score_configurations(raw, configs, queries, qrels, baseline="best", metrics=(QUALITY,), stat_test=stat_test,
                                  max_p=max_p)  # fmt: skip
    test = report.significance_for("pick", QUALITY)
    assert test is not None
    loss = best.ndcg - pick.ndcg
    verdict = "a significant loss" if test.significant else "not a significant loss"
    chosen = Recommendation(pick, best, loss, test.p_value, test.significant, test.wins, test.ties, test.losses, stat_test, max_p)
    return chosen, (
        f"{pick.label} is the best within {budget_ms:g} ms (p50 {pick.p50_ms:.0f} ms): {loss:.3f} nDCG@10 below the best "
        f"overall, {best.label} (p50 {best.p50_ms:.0f} ms), {verdict} (p = {test.p_value:.3g}, {len(queries)} queries)"
    )


def _stage(point: Point) -> str:
    return "fused" if point.depth == 0 else "reranked"


# ---------------------------------------------------------------- machine, exports, cache


def machine(device: str = "cpu") -> dict[str, object]:
    """CPU model, usable cores and the device the cross-encoders ran on."""
    return {"cpu": cpu_model(), "cores": physical_cores(), "device": str(device)}


CSV_FIELDS = ("model", "depth", "blend", QUALITY, RECALL, "p50_ms", "p95_ms", "pareto", "recommended")


def sweep_csv(result: SweepResult) -> str:
    """One row per point, with whether it is on the Pareto front and whether it is the recommendation."""
    front = {p.key for p in result.front}
    chosen = result.recommendation.point.key if result.recommendation else None
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for point in result.points:
        writer.writerow({**point.as_dict(), "pareto": point.key in front, "recommended": point.key == chosen})
    return out.getvalue()


class SweepCache(BoundedLRU[tuple, SweepResult]):
    """Sweeps by (corpus, split, queries, settings): showing a sweep again is instant. Bounded, least recently used."""

    def __init__(self, max_entries: int = 8) -> None:
        super().__init__(max_entries)

    @staticmethod
    def key(
        pipeline: Pipeline, label: str, split: str, queries: Mapping[str, str], qrels: Qrels, settings: SweepSettings
    ) -> tuple:
        judged = tuple((q, tuple(sorted(qrels.get(q, {}).items()))) for q in queries)
        return (pipeline.corpus.fingerprint, pipeline.config, label, split, tuple(queries.items()), judged, settings)
