"""Error analysis over a query set: named configurations, paired significance, per-query wins and
losses, "reranker hurt" flags, most-changed rankings and model agreement.

A configuration is a named `PipelineConfig` variant plus the stage it reads ("bm25" reads stage
bm25, "fused" the fusion list, "rerank:<model>" the reranked list). Configurations that share
their first stage share one pass over the queries, and the cross-encoder's score cache makes
re-scoring a pair free, so adding a configuration costs only what is new about it. Given a TREC run
(`run=`), the run is the first stage of every reranking configuration, as in `rerank-run`, and the
configuration "run" reads the run's own lists.
Significance comes from ranx's `compare` (paired Student's t-test, Fisher's randomization test
or Tukey's HSD; Bassani, ECIR 2022).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, get_args

from reranker.cache import BoundedLRU
from reranker.corpus import Qrels
from reranker.engines import Engine
from reranker.engines.local import LocalEngine
from reranker.errors import ConfigError, RerankLensError
from reranker.evaluation.compare import kendall_tau, movement, rank_biased_overlap, top_k_overlap
from reranker.evaluation.metrics import RANX_LOCK, Run, evaluate_per_query, is_coverage_metric, stage_run
from reranker.pipeline import AUTO, Pipeline, PipelineConfig, resolve_cross_encoder_spec
from reranker.renamed import RENAMED_SETTINGS, deprecated
from reranker.runs import RUN_STAGE, TrecRun
from reranker.types import PipelineResult, RankedList

logger = logging.getLogger(__name__)

# judged@10 says how much of each top 10 rests on judged documents (unjudged ones count as not relevant).
EVAL_METRICS = ("ndcg@10", "mrr@10", "recall@100", "map@100", "judged@10")
StatTest = Literal["student", "fisher", "tukey"]
STAT_TESTS: tuple[str, ...] = get_args(StatTest)
ReadStage = Literal["bm25", "dense", "fused", "reranked", "run"]  # run: a TREC run's list (rerank-run)
MAX_CONFIGURATIONS = 4
FIRST_STAGES = ("bm25", "dense", "fused")
# Settings that change what the first stage returns; everything else only touches reranking.
FIRST_STAGE_FIELDS = frozenset(
    {"bi_encoder", "retrieval_depth", "rrf_k", "bm25_weight", "dense_weight", "bm25_backend", "stemmer", "dense_index"}
)
_CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(PipelineConfig)}
# Short names accepted in "@key=value" suffixes (old names: reranker.renamed.RENAMED_SETTINGS, with a warning).
_SETTING_ALIASES = {"k": "rrf_k"}


class EvaluationCancelled(RerankLensError):
    """The user stopped a long evaluation."""


# ---------------------------------------------------------------- configurations


@dataclass(frozen=True)
class Configuration:
    """A named pipeline variant and the stage it is judged on."""

    name: str
    stage: ReadStage
    cross_encoder: str | None = None
    coarse_cross_encoder: str | None = None
    settings: tuple[tuple[str, object], ...] = ()
    spec: str = ""

    @property
    def reranks(self) -> bool:
        return self.stage == "reranked"

    def overrides(self) -> dict[str, object]:
        """Keyword overrides for `Pipeline.search`."""
        return {"cross_encoder": self.cross_encoder, "coarse_cross_encoder": self.coarse_cross_encoder, **dict(self.settings)}

    def first_stage_key(self) -> tuple[tuple[str, object], ...]:
        return tuple((k, v) for k, v in self.settings if k in FIRST_STAGE_FIELDS)


def parse_configuration(text: str) -> Configuration:
    """`[NAME=]SPEC[@setting=value...]` where SPEC is bm25, dense, fused, run (a TREC run's own lists, when
    one is given), auto, rerank:MODEL, cascade:COARSE+FINE or a bare model id/path; settings are
    PipelineConfig fields (e.g. `auto@rerank_depth=20@blend=0.3`)."""
    raw = text.strip()
    if not raw:
        raise ConfigError("empty configuration; use e.g. bm25, dense, fused, auto, rerank:MODEL or cascade:COARSE+FINE")
    name = None
    if "=" in raw.split("@", 1)[0]:
        name, raw = (part.strip() for part in raw.split("=", 1))
        if not name or not raw:
            raise ConfigError(f"configuration {text!r}: write NAME=SPEC, e.g. ce=rerank:cross-encoder/ms-marco-MiniLM-L6-v2")
    spec, *setting_parts = raw.split("@")
    spec = spec.strip()
    settings = tuple(_parse_setting(part, text) for part in setting_parts)
    lowered = spec.lower()
    if lowered in (*FIRST_STAGES, RUN_STAGE):
        config = Configuration(name or raw, lowered, settings=settings)  # type: ignore[arg-type]
    elif lowered == AUTO:
        config = Configuration(name or raw, "reranked", cross_encoder=AUTO, settings=settings)
    elif lowered.startswith("cascade:"):
        body = spec.split(":", 1)[1]
        if "+" not in body:
            raise ConfigError(f"configuration {text!r}: a cascade is cascade:COARSE+FINE (two models)")
        coarse, fine = (part.strip() for part in body.split("+", 1))
        if not coarse or not fine:
            raise ConfigError(f"configuration {text!r}: both models of cascade:COARSE+FINE are needed")
        config = Configuration(name or raw, "reranked", cross_encoder=fine, coarse_cross_encoder=coarse, settings=settings)
    else:
        model = spec.split(":", 1)[1].strip() if lowered.startswith("rerank:") else spec
        if not model or model.lower() in {"none", "off"}:
            raise ConfigError(f"configuration {text!r}: name a cross-encoder (or use 'fused' for no reranking)")
        config = Configuration(name or raw, "reranked", cross_encoder=model, settings=settings)
    return dataclasses.replace(config, spec=text.strip())


def _parse_setting(part: str, text: str) -> tuple[str, object]:
    if "=" not in part:
        raise ConfigError(f"configuration {text!r}: settings are @name=value, e.g. @rerank_depth=20")
    key, value = (p.strip() for p in part.split("=", 1))
    key = _SETTING_ALIASES.get(key, key).replace("-", "_")
    if key in RENAMED_SETTINGS:
        deprecated(f"@{key}", f"@{RENAMED_SETTINGS[key]}")
        key = RENAMED_SETTINGS[key]
    if key in {"cross_encoder", "coarse_cross_encoder"} or key not in _CONFIG_FIELDS:
        allowed = ", ".join(sorted(set(_CONFIG_FIELDS) - {"cross_encoder", "coarse_cross_encoder"}))
        raise ConfigError(f"configuration {text!r}: unknown setting {key!r}; use one of: {allowed}")
    default = getattr(PipelineConfig(), key)
    declared = str(_CONFIG_FIELDS[key].type)  # e.g. "float | None" for settings whose default is None
    kind = type(default).__name__ if default is not None else next((t for t in ("float", "int") if t in declared), "str")
    try:
        if value.lower() == "none" and (default is None or "None" in declared):
            parsed: object = None
        elif isinstance(default, bool):
            parsed = value.lower() in {"1", "true", "yes", "on"}
        elif kind == "int":
            parsed = int(value)
        elif kind == "float":
            parsed = float(value)
        else:
            parsed = value
    except ValueError:
        raise ConfigError(f"configuration {text!r}: {key} needs a {kind}, not {value!r}") from None
    return key, parsed


def parse_configurations(specs: Sequence[str]) -> list[Configuration]:
    """Configurations from CLI/UI strings; each string may hold several separated by commas."""
    configs = [parse_configuration(part) for spec in specs for part in spec.split(",") if part.strip()]
    names = [c.name for c in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"configuration names must differ ({', '.join(duplicates)} repeats); name them with NAME=SPEC")
    if not configs:
        raise ConfigError("no configurations given; use e.g. --compare bm25,fused,auto")
    return configs


def default_configurations(cross_encoder: str | None, coarse_cross_encoder: str | None = None) -> list[Configuration]:
    """BM25, dense, fused and (when a model is given) fused + that cross-encoder, after the coarse one if any."""
    configs = [parse_configuration(stage) for stage in FIRST_STAGES]
    if resolve_cross_encoder_spec(cross_encoder) is not None or cross_encoder == AUTO:
        spec = f"cascade:{coarse_cross_encoder}+{cross_encoder}" if coarse_cross_encoder else str(cross_encoder)
        configs.append(
            Configuration(
                "reranked", "reranked", cross_encoder=cross_encoder, coarse_cross_encoder=coarse_cross_encoder, spec=spec
            )
        )
    return configs


# ---------------------------------------------------------------- running


NO_RUN_LOADED = "no TREC run is loaded for this corpus: upload one, or drop the 'run' configuration"


class ConfigurationRun(NamedTuple):
    """One configuration's queries as they ran: query id -> result, the model it resolved to, why it failed."""

    results: Mapping[str, PipelineResult]
    model: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ConfigurationResult:
    """One configuration over the query set; `error` says why it could not run (the others still do)."""

    config: Configuration
    results: Mapping[str, PipelineResult] = field(default_factory=dict)
    run: Run = field(default_factory=dict)
    per_query: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    means: Mapping[str, float] = field(default_factory=dict)
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    model: str | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Significance:
    """A configuration against the baseline on one metric (paired over the judged queries)."""

    metric: str
    baseline: str
    name: str
    delta: float
    p_value: float
    significant: bool
    wins: int
    ties: int
    losses: int


@dataclass(frozen=True)
class EvaluationReport:
    """Everything an evaluation produced: per configuration results, significance, context."""

    dataset: str
    split: str
    queries: Mapping[str, str]
    qrels: Qrels
    metrics: tuple[str, ...]
    configurations: tuple[ConfigurationResult, ...]
    baseline: str
    stat_test: str
    max_p: float
    significance: tuple[Significance, ...] = ()
    problems: tuple[str, ...] = ()

    def get(self, name: str) -> ConfigurationResult:
        for result in self.configurations:
            if result.name == name:
                return result
        raise ConfigError(f"no configuration named {name!r} (have: {', '.join(c.name for c in self.configurations)})")

    def significance_for(self, name: str, metric: str) -> Significance | None:
        return next((s for s in self.significance if s.name == name and s.metric == metric), None)

    @property
    def judged(self) -> list[str]:
        return [q for q in self.queries if any(g > 0 for g in self.qrels.get(q, {}).values())]


Progress = Callable[[int, int, str], None]


def run_configurations(
    pipeline: Pipeline,
    queries: Mapping[str, str],
    configs: Sequence[Configuration],
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    engine: Engine | None = None,
    run: TrecRun | None = None,
) -> dict[str, ConfigurationRun]:
    """Run each configuration's queries: name -> its `ConfigurationRun` (results, resolved model, error).

    First-stage configurations reuse any pass with the same first-stage settings; a configuration
    whose model cannot load gets its error and the others go on. `should_stop` is polled between
    queries and raises `EvaluationCancelled`. `engine` scores the cross-encoder pairs (default: this
    process, query by query; reranker.engines). With a `run`, reranking configurations rerank each query's
    list of the run (`RerankStages.rerank`, as `rerank-run` does) and "run" reads those lists; every query
    must then be one of the run's.
    """
    engine = engine or LocalEngine()
    if len(configs) > MAX_CONFIGURATIONS:
        raise ConfigError(f"at most {MAX_CONFIGURATIONS} configurations at once (got {len(configs)})")
    reranking = list(dict.fromkeys(_pass_key(c) for c in configs if c.reranks))
    first_stage = [c for c in configs if not c.reranks]
    # Worst case for the progress bar: every first-stage configuration needs its own pass.
    total = (len(reranking) + len({c.first_stage_key() for c in first_stage})) * len(queries)
    counter = [0]
    outputs: dict[tuple, ConfigurationRun] = {}
    for config in configs:
        key = _pass_key(config, run)
        if config.reranks and key not in outputs:
            outputs[key] = _run_pass(pipeline, queries, config, counter, total, progress, should_stop, engine, run)
    named = {}
    for config in configs:
        if config.stage == RUN_STAGE and run is None:
            named[config.name] = ConfigurationRun({}, None, NO_RUN_LOADED)
            continue
        if config.reranks:
            named[config.name] = outputs[_pass_key(config, run)]
            continue
        # Any successful pass over the same first stage already holds this stage.
        reuse = next((out for key, out in outputs.items() if out.error is None and _same_first_stage(key, config, run)), None)
        if reuse is None:
            key = _pass_key(config, run)
            if key not in outputs:
                outputs[key] = _run_pass(pipeline, queries, config, counter, total, progress, should_stop, engine, run)
            reuse = outputs[key]
        named[config.name] = ConfigurationRun(reuse.results, None, reuse.error)
    if progress and counter[0] < total:
        progress(total, total, "done")
    return named


def _run_pass(pipeline, queries, config, counter, total, progress, should_stop, engine, run=None) -> ConfigurationRun:
    """One pass over the queries with a configuration's overrides."""
    model, error = _check_models(config)
    results: dict[str, PipelineResult] = {}
    over_run = _source(config, run) == RUN_STAGE

    def search(qid: str, text: str) -> PipelineResult:
        if should_stop and should_stop():
            raise EvaluationCancelled(f"stopped after {counter[0]} of {total} query runs")
        if over_run:
            if qid not in run.queries:
                raise ConfigError(f"query {qid} is not in the run {run.path}; evaluate the run's queries only")
            return pipeline.rerank(text, run.ranked_list(qid), **config.overrides())
        return pipeline.search(text, **config.overrides())

    if error is None:
        try:
            for qid, result in engine.run((qid, functools.partial(search, qid, text)) for qid, text in queries.items()):
                results[qid] = result
                counter[0] += 1
                if progress:
                    progress(counter[0], total, config.name)
        except EvaluationCancelled:
            raise
        except RerankLensError as exc:
            error = str(exc)
        except (OSError, ValueError, RuntimeError) as exc:  # a model that loads but cannot run
            error = f"{type(exc).__name__}: {exc}"
    if error is not None:
        logger.warning("configuration %s failed: %s", config.name, error)
        return ConfigurationRun({}, model, error)
    return ConfigurationRun(results, model, None)


def _source(config: Configuration, run: TrecRun | None) -> str:
    """Where a configuration's first stage comes from: the run ("run") or the pipeline's retrieval."""
    return RUN_STAGE if run is not None and (config.reranks or config.stage == RUN_STAGE) else "retrieval"


def _pass_key(config: Configuration, run: TrecRun | None = None) -> tuple:
    """Configurations with equal keys produce identical results; "__first__" groups first stages."""
    items = sorted(config.overrides().items(), key=lambda kv: kv[0])
    return (*items, ("__source__", _source(config, run)), ("__first__", config.first_stage_key()))


def _same_first_stage(key: tuple, config: Configuration, run: TrecRun | None) -> bool:
    """Whether the pass `key` holds `config`'s (first-stage) list: any pass over the run holds the run's."""
    settings = dict(key)
    if settings["__source__"] != _source(config, run):
        return False
    return config.stage == RUN_STAGE or settings["__first__"] == config.first_stage_key()


def _check_models(config: Configuration) -> tuple[str | None, str | None]:
    if not config.reranks:
        return None, None
    fine = resolve_cross_encoder_spec(config.cross_encoder)
    if fine is None:
        return None, (
            "no cross-encoder is available offline for 'auto'; pass a local model directory (rerank:PATH) or connect to the hub"
        )
    return fine, None


def evaluate_configurations(
    pipeline: Pipeline,
    queries: Mapping[str, str],
    qrels: Qrels,
    configs: Sequence[Configuration],
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    engine: Engine | None = None,
    run: TrecRun | None = None,
    **scoring: Any,
) -> EvaluationReport:
    """Run and score configurations on judged queries, with significance against `baseline`; `engine` scores
    the cross-encoder pairs (default: this process); with a `run`, reranking configurations rerank its lists
    (see `run_configurations`). `scoring` is `score_configurations`' keyword arguments (baseline, metrics,
    stat_test, max_p, dataset, split, problems), checked before any query runs."""
    unknown = sorted(set(scoring) - set(_scoring_defaults()))
    if unknown:
        raise TypeError(f"evaluate_configurations() got unexpected keyword arguments: {', '.join(unknown)}")
    options = {**_scoring_defaults(), **scoring}
    queries, qrels, options["baseline"] = _judged(
        queries, qrels, configs, options["baseline"], options["stat_test"], options["max_p"]
    )
    raw = run_configurations(pipeline, queries, configs, progress=progress, should_stop=should_stop, engine=engine, run=run)
    return score_configurations(raw, configs, queries, qrels, **options)


def _scoring_defaults() -> dict[str, Any]:
    """`score_configurations`' keyword-only arguments and their defaults."""
    parameters = inspect.signature(score_configurations).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def score_configurations(
    raw: Mapping[str, ConfigurationRun],
    configs: Sequence[Configuration],
    queries: Mapping[str, str],
    qrels: Qrels,
    *,
    baseline: str | None = None,
    metrics: Sequence[str] = EVAL_METRICS,
    stat_test: StatTest = "student",
    max_p: float = 0.05,
    dataset: str = "",
    split: str = "",
    problems: Sequence[str] = (),
) -> EvaluationReport:
    """Score configurations whose queries already ran (`raw`: name -> `ConfigurationRun`, as
    `run_configurations` returns) on the judged queries, with significance against `baseline`.
    `rerank-run` scores its input run and the reranked run this way."""
    queries, qrels, baseline = _judged(queries, qrels, configs, baseline, stat_test, max_p)
    metrics = tuple(metrics)
    scored = []
    for config in configs:
        results, model, error = raw[config.name]
        if error is not None:
            scored.append(ConfigurationResult(config, model=model, error=error))
            continue
        results = {q: r for q, r in results.items() if q in queries}
        run = stage_run(results, config.stage)
        per_query = evaluate_per_query(qrels, run, metrics)
        means = {m: _mean(v[m] for v in per_query.values()) for m in metrics}
        scored.append(ConfigurationResult(config, results, run, per_query, means, _latency(results, config), model))
    significance = _significance(qrels, scored, baseline, metrics, stat_test, max_p)
    return EvaluationReport(
        dataset, split, dict(queries), qrels, metrics, tuple(scored), baseline, stat_test, max_p, significance, tuple(problems)
    )


def _judged(queries, qrels, configs, baseline, stat_test, max_p) -> tuple[dict[str, str], Qrels, str]:
    """The queries with a relevant judgment and their qrels, and the baseline's name; checks the test settings."""
    if stat_test not in STAT_TESTS:
        raise ConfigError(f"significance test must be one of {', '.join(STAT_TESTS)}, not {stat_test!r}")
    if not 0 < max_p < 1:
        raise ConfigError("the p-value threshold must be between 0 and 1 (0.05 is usual)")
    judged = {q for q, docs in qrels.items() if any(g > 0 for g in docs.values())}
    queries = {q: t for q, t in queries.items() if q in judged}
    if not queries:
        raise ConfigError("none of the queries has a relevant judgment: add qrels (query-id, corpus-id, grade > 0) for them")
    names = [c.name for c in configs]
    baseline = baseline or names[0]
    if baseline not in names:
        raise ConfigError(f"baseline {baseline!r} is not one of the configurations ({', '.join(names)})")
    return queries, {q: qrels[q] for q in queries}, baseline


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _latency(results: Mapping[str, PipelineResult], config: Configuration) -> dict[str, float]:
    """Mean milliseconds per stage this configuration needs (a first-stage config skips reranking)."""
    needed = {"bm25": ("bm25",), "dense": ("dense",), "fused": FIRST_STAGES, "run": ()}.get(config.stage)
    totals: dict[str, list[float]] = {}
    for result in results.values():
        for timing in result.timings:
            if needed is None or timing.stage in needed:
                totals.setdefault(timing.stage, []).append(timing.ms)
    out = {stage: sum(v) / len(v) for stage, v in totals.items()}
    if out:
        out["total"] = sum(out.values())
    return out


def _significance(qrels, scored, baseline, metrics, stat_test, max_p) -> tuple[Significance, ...]:
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import compare

    usable = [r for r in scored if r.ok]
    base = next((r for r in usable if r.name == baseline), None)
    if base is None or len(usable) < 2:
        return ()
    judged = list(qrels)
    metrics = [m for m in metrics if not is_coverage_metric(m)]  # coverage is reported, not tested
    runs = [RanxRun({q: (r.run.get(q) or {"__no_result__": 0.0}) for q in judged}, name=r.name) for r in usable]
    with RANX_LOCK:
        report = compare(RanxQrels(qrels), runs, list(metrics), stat_test=stat_test, max_p=max_p, make_comparable=True)
    out = []
    for result in usable:
        if result.name == baseline:
            continue
        for metric in metrics:
            test = report.comparisons[baseline, result.name][metric]
            p = float(test["p_value"])
            p = 1.0 if math.isnan(p) else p
            base_scores = [base.per_query[q][metric] for q in judged]
            scores = [result.per_query[q][metric] for q in judged]
            wins = sum(s > b for s, b in zip(scores, base_scores, strict=True))
            losses = sum(s < b for s, b in zip(scores, base_scores, strict=True))
            out.append(
                Significance(
                    metric,
                    baseline,
                    result.name,
                    result.means[metric] - base.means[metric],
                    p,
                    bool(p < max_p),
                    wins,
                    len(judged) - wins - losses,
                    losses,
                )
            )
    return tuple(out)


# ---------------------------------------------------------------- per-query analysis


@dataclass(frozen=True)
class HurtDocument:
    """A relevant document that was in the fused top-n and fell out of the reranked top-n."""

    doc_id: str
    grade: int
    before: int
    after: int | None


@dataclass(frozen=True)
class QueryDelta:
    """One query's metric before (fused) and after (reranked), with what reranking pushed out."""

    query_id: str
    query: str
    before: float
    after: float
    hurt: tuple[HurtDocument, ...] = ()

    @property
    def delta(self) -> float:
        return self.after - self.before


def hurt_documents(result: PipelineResult, judgments: Mapping[str, int], top_n: int | None = None) -> tuple[HurtDocument, ...]:
    """Relevant documents in the fused top-n that the cross-encoder scored and pushed out of the top-n
    (documents past the rerank depth were never scored, so they are not the reranker's doing)."""
    if "reranked" not in result.stages:
        return ()
    n = top_n or result.top_n
    before, after = result.before, result.stages["reranked"]
    out = []
    for hit in before.hits[:n]:
        grade = judgments.get(hit.doc_id, 0)
        if grade > 0 and movement(hit.doc_id, before, after, n).kind == "dropped":
            out.append(HurtDocument(hit.doc_id, grade, hit.rank, after.rank_of(hit.doc_id)))
    return tuple(out)


def query_deltas(report: EvaluationReport, name: str, metric: str = "ndcg@10", top_n: int | None = None) -> list[QueryDelta]:
    """Per judged query: the value of `metric` before reranking (fused, or the run's list) against the
    configuration's (reranked) value."""
    result = report.get(name)
    if not result.ok:
        return []
    if not result.config.reranks:
        raise ConfigError(f"{name!r} does not rerank; pick a configuration with a cross-encoder for before/after")
    fused = evaluate_per_query(report.qrels, {q: r.before.as_run() for q, r in result.results.items()}, (metric,))
    out = []
    for qid, values in result.per_query.items():
        pipeline_result = result.results.get(qid)
        hurt = hurt_documents(pipeline_result, report.qrels.get(qid, {}), top_n) if pipeline_result else ()
        out.append(QueryDelta(qid, report.queries.get(qid, ""), fused.get(qid, {}).get(metric, 0.0), values[metric], hurt))
    return out


def helped_and_hurt(deltas: Sequence[QueryDelta], n: int = 10) -> tuple[list[QueryDelta], list[QueryDelta]]:
    """The n queries reranking helped most and the n it hurt most (changed queries only)."""
    helped = sorted((d for d in deltas if d.delta > 0), key=lambda d: (-d.delta, d.query_id))[:n]
    hurt = sorted((d for d in deltas if d.delta < 0), key=lambda d: (d.delta, d.query_id))[:n]
    return helped, hurt


@dataclass(frozen=True)
class RankingChange:
    """How differently two stages ordered one query's candidates."""

    query_id: str
    query: str
    rbo: float
    kendall_tau: float
    overlap: float


def ranking_changes(results: Mapping[str, PipelineResult], queries: Mapping[str, str], k: int = 10) -> list[RankingChange]:
    """Fused vs reranked per query, most changed (lowest RBO) first; RBO and tau over the reranked
    candidates, overlap over the top k."""
    out = []
    for qid, result in results.items():
        if "reranked" not in result.stages:
            continue
        after = result.stages["reranked"].doc_ids()
        before = result.before.doc_ids()[: len(after)]
        out.append(
            RankingChange(
                qid,
                queries.get(qid, result.query),
                rank_biased_overlap(before, after),
                kendall_tau(before, after),
                top_k_overlap(before, after, k),
            )
        )
    return sorted(out, key=lambda c: (c.rbo, c.query_id))


# ---------------------------------------------------------------- model agreement


@dataclass(frozen=True)
class Agreement:
    """Pairwise agreement between rankings: Kendall's tau and top-k overlap (square, by `names`)."""

    names: tuple[str, ...]
    kendall_tau: tuple[tuple[float, ...], ...]
    overlap: tuple[tuple[float, ...], ...]
    k: int
    queries: int


def agreement(rankings: Mapping[str, RankedList | Sequence[RankedList]], k: int = 10) -> Agreement:
    """Agreement between named rankings of one query (name -> RankedList) or averaged over
    queries (name -> list of RankedList, same query order for every name)."""
    names = tuple(rankings)
    per_name = {n: (v if isinstance(v, list | tuple) else [v]) for n, v in rankings.items()}
    counts = {len(v) for v in per_name.values()}
    if len(counts) > 1:
        raise ConfigError("every ranking needs the same queries to compare agreement")
    count = counts.pop() if counts else 0
    tau = [[0.0] * len(names) for _ in names]
    overlap = [[0.0] * len(names) for _ in names]
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if count == 0:
                continue
            taus, overlaps = [], []
            for x, y in zip(per_name[a], per_name[b], strict=True):
                ids_a, ids_b = x.doc_ids(), y.doc_ids()
                taus.append(kendall_tau(ids_a, ids_b))
                overlaps.append(top_k_overlap(ids_a, ids_b, min(k, max(len(ids_a), len(ids_b), 1))))
            tau[i][j] = _mean(taus)
            overlap[i][j] = _mean(overlaps)
    return Agreement(names, tuple(map(tuple, tau)), tuple(map(tuple, overlap)), k, count)


def model_agreement(report: EvaluationReport, names: Sequence[str] | None = None, k: int = 10) -> Agreement:
    """Agreement between the reranked lists of reranking configurations, averaged over queries."""
    usable = [r for r in report.configurations if r.ok and (names is None or r.name in names)]
    common = [q for q in report.queries if all(q in r.results for r in usable)]
    lists = {r.name: [r.results[q].stages[r.config.stage] for q in common] for r in usable}
    return agreement(lists, k)


@dataclass(frozen=True)
class QueryComparison:
    """Up to four configurations (e.g. cross-encoders) on one query: lists, latency, agreement."""

    query: str
    lists: Mapping[str, RankedList]
    latency_ms: Mapping[str, float]
    errors: Mapping[str, str]
    agreement: Agreement | None


def compare_on_query(
    pipeline: Pipeline,
    query: str,
    configs: Sequence[Configuration],
    k: int = 10,
    *,
    run: TrecRun | None = None,
    qid: str | None = None,
) -> QueryComparison:
    """Run each configuration on one query; a configuration that cannot load is reported in `errors`. With a
    `run` that ranks the query as `qid`, reranking configurations rerank the run's list of it and "run" reads
    that list, as in `evaluate_configurations`."""
    key = qid or "query"
    raw = run_configurations(pipeline, {key: query}, configs, run=run)
    lists: dict[str, RankedList] = {}
    latency: dict[str, float] = {}
    errors: dict[str, str] = {}
    for config in configs:
        results, _, error = raw[config.name]
        if error is not None or key not in results:
            errors[config.name] = error or "no result"
            continue
        result = results[key]
        if config.stage not in result.stages:
            errors[config.name] = f"stage {config.stage} did not run (is a cross-encoder available?)"
            continue
        lists[config.name] = result.stages[config.stage]
        latency[config.name] = _latency({key: result}, config).get("total", 0.0)
    matrix = agreement(lists, k) if len(lists) > 1 else None
    return QueryComparison(query, lists, latency, errors, matrix)


# ---------------------------------------------------------------- cache


class ReportCache(BoundedLRU[tuple, EvaluationReport]):
    """Evaluation reports by (dataset, split, queries, configurations, settings): reopening is instant.

    The app keeps one per server (`reranker.ui.state`, `reports`): a key holds the corpus's fingerprint, the
    queries and the judgments, so a visitor reaches only reports of data they hold themselves."""

    def __init__(self, max_entries: int = 16) -> None:
        super().__init__(max_entries)

    @staticmethod
    def key(pipeline: Pipeline, split: str, queries: Mapping[str, str], configs: Sequence[Configuration], *extra) -> tuple:
        return (pipeline.corpus.fingerprint, pipeline.config, split, tuple(queries.items()), tuple(configs), *extra)
