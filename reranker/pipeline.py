"""The multi-stage pipeline: BM25 and dense retrieval, RRF, optional coarse and fine cross-encoders.

Every stage returns a `RankedList`; the pipeline times each one (wall clock, tokenisation
included, model loading kept apart) and returns them all in one `PipelineResult`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from reranker.bm25 import Backend, BM25Retriever, Tokenizer
from reranker.budget import check_budget, plan_cascade_for, plan_rerank
from reranker.cache import BoundedLRU, cache_root
from reranker.corpus import Corpus
from reranker.cross_encoder import SCORE_CACHE_ENTRIES, CrossEncoderReranker, ScoreCache
from reranker.cross_encoder_settings import CrossEncoderSettings, settings_from
from reranker.dense import DenseRetriever, IndexKind
from reranker.errors import ConfigError, ModelUnavailableError
from reranker.fusion import blend, reciprocal_rank_fusion
from reranker.input_policy import UNCHANGED, InputNote, InputPolicy, blend_for, needs_note
from reranker.models import DEFAULT_BI_ENCODER, DEFAULT_CROSS_ENCODER, PROJECT_MODELS, resolve_model
from reranker.ranker import Ranker, is_ranker_spec, load_ranker
from reranker.renamed import accept_old_field_names
from reranker.types import PipelineResult, RankedList, StageTiming

logger = logging.getLogger(__name__)

AUTO = "auto"
RERANK_STAGES = ("coarse", "reranked")  # the stages cross-encoders write, after the first stage
BM25_CACHE_MIN_DOCUMENTS = 2_000
MAX_QUERY_CHARS = 10_000
MAX_RERANKERS = 16  # rerankers a pipeline keeps built, least recently used out first (settings a visitor tried)


@accept_old_field_names
@dataclass(frozen=True)
class PipelineConfig(CrossEncoderSettings):
    """All settings of one pipeline run; any of them can be overridden per query in `Pipeline.search`.

    The cross-encoder's own settings (batch_size, max_length, chunk_tokens, chunk_overlap, aggregation,
    trust_remote_code, precision, device, the window caps, allow_untrained_head) are `CrossEncoderSettings`'
    fields, inherited (keyword-only) and documented there.

    Attributes:
        bi_encoder: Sentence-transformers model of the dense stage: a hub id or a local directory.
        cross_encoder: Reranker: a hub id, a local directory, "auto" (the hub default when it resolves, else
            the first of the project's offline models that resolves, in `PROJECT_MODELS` order), a
            `ranker:MODULE:FACTORY` (reranker.ranker) or None to stop after fusion.
        retrieval_depth: Documents BM25 and the dense stage each return.
        rrf_k: The k of reciprocal rank fusion, sum of w / (k + rank); a larger k flattens rank differences.
        bm25_weight: Weight w of the BM25 list in the fusion.
        dense_weight: Weight w of the dense list in the fusion.
        rerank_depth: Fused candidates the cross-encoder scores.
        top_n: Documents in the final list.
        blend: Weight of the z-scored fused score blended into the z-scored cross-encoder score, 0 to 1;
            None takes a fine-tuned model card's recommendation (0 for other models). (Was `interpolation`.)
        coarse_cross_encoder: An optional small cross-encoder run first over `coarse_depth` candidates.
        coarse_depth: Fused candidates the coarse cross-encoder scores.
        bm25_backend: BM25 implementation: bm25s or rank_bm25 (they rank alike).
        stemmer: Snowball stemmer language of the BM25 tokenizer; None for no stemming.
        dense_index: FAISS index: flat (exact), hnsw, or auto (exact below 200k documents).
        latency_budget_ms: Milliseconds for a whole query; the rerank depth shrinks to fit. None: no budget.
        input_policy: Pairs and blend for long queries: auto takes the model card's policy (e.g. a query cut to its
            start and end, a minimum document window, more of the fused score), off lays out every query as before.
    """

    bi_encoder: str = DEFAULT_BI_ENCODER
    cross_encoder: str | None = AUTO
    retrieval_depth: int = 100
    rrf_k: int = 60
    bm25_weight: float = 1.0
    dense_weight: float = 1.0
    rerank_depth: int = 50
    top_n: int = 10
    blend: float | None = None  # None: a fine-tuned model's recommended weight (its card), else 0
    coarse_cross_encoder: str | None = None
    coarse_depth: int = 200
    bm25_backend: Backend = "bm25s"
    stemmer: str | None = "english"
    dense_index: IndexKind = "auto"
    latency_budget_ms: float | None = None
    input_policy: Literal["auto", "off"] = "auto"

    def validate(self) -> None:
        super().validate()
        check_budget(self.latency_budget_ms)
        if self.rrf_k < 0:
            raise ConfigError("RRF k must be 0 or more (60 is the usual value)")
        if self.top_n < 1:
            raise ConfigError("top-n must be at least 1")
        if self.retrieval_depth < 1:
            raise ConfigError(f"retrieval depth must be at least 1, not {self.retrieval_depth}")
        for name, value in (("rerank depth", self.rerank_depth), ("coarse depth", self.coarse_depth)):
            if value < 0:
                raise ConfigError(f"{name} must be 0 or more, not {value} (0 turns that reranking stage off)")
        if self.blend is not None and not 0.0 <= self.blend <= 1.0:
            raise ConfigError(f"blend must be between 0 and 1, not {self.blend}", field="blend")
        if self.input_policy not in ("auto", "off"):
            raise ConfigError(f"input policy must be auto or off, not {self.input_policy!r}", field="input_policy")


@lru_cache(maxsize=1)
def default_cross_encoder() -> str | None:
    """The hub default if it resolves (cache or hub), else the best offline model, else None."""
    try:
        resolve_model(DEFAULT_CROSS_ENCODER)
        return DEFAULT_CROSS_ENCODER
    except ModelUnavailableError:
        pass
    for name in PROJECT_MODELS:
        try:
            resolve_model(name)
            return name
        except ModelUnavailableError:
            continue
    return None


def resolve_cross_encoder_spec(spec: str | None) -> str | None:
    if spec is None or spec.strip().lower() in {"", "none", "off"}:
        return None
    return default_cross_encoder() if spec == AUTO else spec


class RerankStages:
    """The stages after the first: an optional coarse cross-encoder, the cross-encoder, and the blend with
    the first stage's scores, over a corpus.

    `Pipeline` runs them on its fused list; `rerank` runs them on any first-stage list (e.g. one query of
    a TREC run, in `rerank-run`), so both share one code path, one model cache and the score cache.

    `score_cache` holds the raw score of every (query, window) pair its cross-encoders scored, at most
    `score_cache_entries` (least recently used first out): every reranker it builds, under any settings,
    reads and fills it, so no pair is scored twice. It belongs to this object, as the corpus does: scores of
    one corpus (e.g. a visitor's upload) are never kept past its pipeline, nor seen by another's.
    """

    def __init__(
        self, corpus: Corpus, config: PipelineConfig | None = None, *, score_cache_entries: int = SCORE_CACHE_ENTRIES
    ) -> None:
        if len(corpus) == 0:
            raise ConfigError("the corpus is empty: load at least one document")
        self.corpus = corpus
        self.config = config or PipelineConfig()
        self.config.validate()
        self.score_cache = ScoreCache(score_cache_entries)
        # Rerankers by (spec, settings): the page makes one per setting a visitor tries, each with its own
        # token cache, so only the latest few are kept (the model itself stays loaded: reranker.models).
        self._rerankers: BoundedLRU[tuple[str, CrossEncoderSettings], CrossEncoderReranker | Ranker] = BoundedLRU(
            MAX_RERANKERS
        )
        self._build_lock = threading.Lock()

    def rerank(self, query: str, first_stage: RankedList, **overrides: Any) -> PipelineResult:
        """Rerank a first-stage list exactly as `Pipeline.search` reranks its fused list.

        Args:
            query: The query text; whitespace is collapsed.
            first_stage: The candidates, best first; their scores are what the `blend` mixes in.
                Its `stage` names it in the result (e.g. "run").
            **overrides: `PipelineConfig` fields for this call only (first-stage settings have no effect).

        Returns:
            A `PipelineResult` holding `first_stage` (its `before`), then `coarse` and `reranked` when a
            cross-encoder ran.

        Raises:
            ConfigError: The query is empty, an override is not a valid setting, or the list names a document
                the corpus lacks.
            ModelUnavailableError: A model resolves nowhere.

        Example:
            >>> from reranker import Document, PipelineConfig, RerankStages, build_corpus
            >>> from reranker.types import Hit, RankedList
            >>> corpus = build_corpus([
            ...     Document("attention", "Attention weighs value vectors by softmax of query-key dot products."),
            ...     Document("rnn", "Recurrent networks read a sequence one step at a time."),
            ... ])
            >>> run = RankedList("run", (Hit("rnn", 1, 12.5, "run"), Hit("attention", 2, 9.0, "run")), "BM25")
            >>> stages = RerankStages(corpus, PipelineConfig(cross_encoder="auto"))  # no first-stage index is built
            >>> result = stages.rerank("how does attention weigh values?", run)
            >>> list(result.stages), result.after.doc_ids()
            (['run', 'reranked'], ['attention', 'rnn'])
        """
        config = dataclasses.replace(self.config, **overrides) if overrides else self.config
        config.validate()
        started = time.perf_counter()
        query = check_query(query)
        if first_stage.stage in RERANK_STAGES:
            raise ConfigError(f"the first-stage list cannot be named {first_stage.stage!r}: reranking writes that stage")
        unknown = [hit.doc_id for hit in first_stage.hits if hit.doc_id not in self.corpus]
        if unknown:
            raise ConfigError(f"the first-stage list names {len(unknown)} document(s) the corpus lacks, e.g. {unknown[0]!r}")
        stages: dict[str, RankedList] = {first_stage.stage: first_stage}
        timings: list[StageTiming] = []
        messages: list[str] = []
        note = self._rerank_stages(query, first_stage, config, started, stages, timings, messages)
        return PipelineResult(query, dict(stages), tuple(timings), tuple(messages), config.top_n, note)

    def reranker(self, spec: str, config: PipelineConfig | None = None) -> CrossEncoderReranker | Ranker:
        """The reranking stage for a spec under a config's cross-encoder settings: a cross-encoder (over this
        object's `score_cache`), or the `Ranker` a `ranker:MODULE:FACTORY` spec names (reranker.ranker). The
        last `MAX_RERANKERS` built are kept."""
        settings = settings_from(config or self.config)

        def build() -> CrossEncoderReranker | Ranker:
            return load_ranker(spec) if is_ranker_spec(spec) else CrossEncoderReranker(spec, settings, cache=self.score_cache)

        with self._build_lock:
            return self._rerankers.get_or_put((spec, settings), build)

    def _rerank_stages(self, query, first_stage, config, started, stages, timings, messages) -> InputNote | None:
        """Coarse and fine cross-encoders over `first_stage`, then the blend with its scores, into `stages`; the
        note on how a long query was laid out (None when there is nothing to say)."""
        candidates = first_stage
        coarse_spec = resolve_cross_encoder_spec(config.coarse_cross_encoder) if config.coarse_depth else None
        fine_spec = resolve_cross_encoder_spec(config.cross_encoder) if config.rerank_depth else None
        if config.rerank_depth == 0 and config.cross_encoder:
            messages.append(f"Rerank depth 0: reranking is off, so the results are the {first_stage.stage} list.")
        if config.cross_encoder == AUTO and fine_spec is None:
            after = "fusion" if first_stage.stage == "fused" else f"the {first_stage.stage} list"
            messages.append(
                f"No cross-encoder is available offline, so results stop after {after}. "
                "Pass --cross-encoder with a local model directory, or connect to the hub."
            )
        budget = config.latency_budget_ms
        if budget and any(is_ranker_spec(spec) for spec in (coarse_spec, fine_spec)):
            messages.append("The latency budget plans cross-encoder depths only; this ranker reranks the configured depth.")
            budget = None
        if coarse_spec and fine_spec:
            coarse_depth = self._clamp("coarse depth", config.coarse_depth, len(candidates), messages)
            if budget:
                cascade = plan_cascade_for(
                    self.reranker(coarse_spec, config),
                    self.reranker(fine_spec, config),
                    query,
                    [self.corpus[h.doc_id] for h in candidates.hits[:coarse_depth]],
                    budget_ms=budget,
                    spent_ms=(time.perf_counter() - started) * 1000,
                    max_fine=config.rerank_depth,
                )
                coarse_depth = cascade.coarse_depth
                messages.append(f"Latency budget (cascade): {cascade.reason}.")
            candidates = self._rerank_stage(
                "coarse", coarse_spec, query, candidates, coarse_depth, config, stages, timings, messages
            )
        if fine_spec:
            rerank_depth = self._clamp("rerank depth", config.rerank_depth, len(candidates), messages)
            if budget:
                plan = plan_rerank(
                    self.reranker(fine_spec, config),
                    query,
                    [self.corpus[h.doc_id] for h in candidates.hits[:rerank_depth]],
                    budget_ms=budget,
                    spent_ms=(time.perf_counter() - started) * 1000,
                )
                rerank_depth = max(1, plan.depth)
                messages.append(f"Latency budget: {plan.reason}.")
            self._rerank_stage("reranked", fine_spec, query, candidates, rerank_depth, config, stages, timings, messages)
            weight, note = self._blend_with_policy(query, fine_spec, config, messages, first_stage.stage)
            if weight > 0:
                stages["reranked"] = blend(stages["reranked"], first_stage, weight)
            return note
        return None

    def _blend_with_policy(
        self, query: str, spec: str, config: PipelineConfig, messages: list[str], first: str
    ) -> tuple[float, InputNote | None]:
        """The blend weight for this query (a long query may get the card's long-query weight) and the note on how
        the query was laid out; a `Ranker` that is not a cross-encoder gets the plain blend and no note."""
        reranker = self.reranker(spec, config)
        if not isinstance(reranker, CrossEncoderReranker):
            return self._blend_for(spec, config, messages, first), None
        policy = self.input_policy(spec, config)
        pairs = reranker.plan_query(query, policy)
        card_weight = reranker.card_blend
        weight = self._blend_for(spec, config, messages, first, long_query=blend_for(card_weight, pairs, policy))
        if not needs_note(pairs):
            return weight, None
        return weight, InputNote(pairs, reranker.dropped_text(query, pairs), card_weight, weight, config.blend is not None)

    def input_policy(self, spec: str, config: PipelineConfig) -> InputPolicy:
        """The pair layout for long queries: the model card's (`input_policy` auto), or the plain one."""
        reranker = self.reranker(spec, config)
        if config.input_policy == "off" or not isinstance(reranker, CrossEncoderReranker):
            return UNCHANGED
        return reranker.card_input_policy

    def _rerank_stage(self, stage, spec, query, candidates, depth, config, stages, timings, messages) -> RankedList:
        reranker = self.reranker(spec, config)  # loads the model on first use; rerank() reports that load once
        if not isinstance(reranker, CrossEncoderReranker):
            return self._ranker_stage(stage, spec, reranker, query, candidates, depth, stages, timings)
        start = time.perf_counter()
        policy = self.input_policy(spec, config)
        output = reranker.rerank(query, candidates, self.corpus, depth=depth, stage=stage, policy=policy)
        ms = (time.perf_counter() - start) * 1000
        stages[stage] = output.ranked
        messages.extend(m for m in output.messages if m not in messages)
        chunks = sum(len(s.chunks) for s in output.scores)
        detail = f"{spec}: {len(output.scores)} docs, {chunks} windows, {output.pairs_cached} from cache"
        timings.append(StageTiming(stage, ms, output.load_ms, detail))
        return output.ranked

    def _ranker_stage(self, stage, spec, ranker: Ranker, query, candidates, depth, stages, timings) -> RankedList:
        """A `Ranker`'s stage: its order of the top `depth` candidates, each hit keeping its first-stage sources."""
        pool = candidates.hits[:depth]
        start = time.perf_counter()
        ranked = ranker.rerank(query, [self.corpus[hit.doc_id] for hit in pool])
        ms = (time.perf_counter() - start) * 1000
        by_id = {hit.doc_id: hit for hit in pool}
        if sorted(ranked.doc_ids()) != sorted(by_id):
            raise ConfigError(f"ranker {spec}: its list is not a reordering of the {len(pool)} candidates it was given")
        hits = tuple(dataclasses.replace(h, stage=stage, sources=by_id[h.doc_id].sources) for h in ranked.hits)
        stages[stage] = dataclasses.replace(ranked, stage=stage, hits=hits)
        timings.append(StageTiming(stage, ms, 0.0, f"{spec}: {len(pool)} docs"))
        return stages[stage]

    def _blend_for(
        self, spec: str, config: PipelineConfig, messages: list[str], first: str = "fused", long_query: float | None = None
    ) -> float:
        """The explicit weight, else the one a locally fine-tuned model's card recommends (chosen on its dev queries),
        or `long_query`, the card's weight for a long query when it differs (reranker.input_policy)."""
        if config.blend is not None:
            return config.blend
        reranker = self.reranker(spec, config)
        if not isinstance(reranker, CrossEncoderReranker):
            return 0.0
        recommended = reranker.card_blend
        if long_query is not None and long_query != recommended:
            messages.append(
                f"Reranked scores blend {long_query:g} of the {first} score into the cross-encoder's (both z-scored), "
                f"as {spec}'s model card recommends for long queries ({recommended:g} for others); "
                "set the blend to 0 for the cross-encoder alone."
            )
            return long_query
        if recommended > 0:
            messages.append(
                f"Reranked scores blend {recommended:g} of the {first} score into the cross-encoder's (both z-scored), "
                f"as {spec}'s model card recommends; set the blend to 0 for the cross-encoder alone."
            )
        return recommended

    @staticmethod
    def _clamp(name: str, value: int, limit: int, messages: list[str]) -> int:
        if value > limit:
            if limit > 0:
                messages.append(f"{name} {value} is larger than the {limit} available; using {limit}.")
            return max(limit, 1)
        return value


class Pipeline(RerankStages):
    """A corpus with its first-stage indexes built, ready to answer queries."""

    def __init__(
        self,
        corpus: Corpus,
        config: PipelineConfig | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        show_progress_bar: bool = False,
        cache_dir: str | None = None,
        score_cache_entries: int = SCORE_CACHE_ENTRIES,
    ) -> None:
        super().__init__(corpus, config, score_cache_entries=score_cache_entries)
        self._progress = progress
        self._show_bar = show_progress_bar
        self._cache_dir = cache_dir
        self._bm25: dict[tuple, BM25Retriever] = {}
        self._dense: dict[str, DenseRetriever] = {}
        self.startup: list[StageTiming] = []
        self._bm25_for(self.config)
        self._dense_for(self.config)

    def _bm25_for(self, config: PipelineConfig) -> BM25Retriever:
        key = (config.bm25_backend, config.stemmer)
        with self._build_lock:
            if key not in self._bm25:
                start = time.perf_counter()
                retriever = BM25Retriever(
                    self.corpus,
                    backend=config.bm25_backend,
                    tokenizer=Tokenizer(stemmer=config.stemmer),
                    cache_dir=self._bm25_cache_dir(),
                )
                self._bm25[key] = retriever
                ms = (time.perf_counter() - start) * 1000
                detail = f"{config.bm25_backend}, {len(self.corpus)} docs, index {retriever.cache_status}"
                self.startup.append(StageTiming("bm25 index", 0.0, ms, detail))
            return self._bm25[key]

    def _bm25_cache_dir(self) -> Path | None:
        """Indexes of small corpora are rebuilt in milliseconds and not worth a file."""
        if len(self.corpus) < BM25_CACHE_MIN_DOCUMENTS:
            return None
        return (Path(self._cache_dir) if self._cache_dir else cache_root()) / "bm25"

    def _dense_for(self, config: PipelineConfig) -> DenseRetriever:
        with self._build_lock:
            if config.bi_encoder not in self._dense:
                retriever = DenseRetriever(
                    self.corpus,
                    config.bi_encoder,
                    index=config.dense_index,
                    cache_dir=self._cache_dir,
                    device=config.device,
                    progress=self._progress,
                    show_progress_bar=self._show_bar,
                )
                self._dense[config.bi_encoder] = retriever
                self.startup.append(
                    StageTiming(
                        "dense index",
                        0.0,
                        retriever.setup_ms,
                        f"{config.bi_encoder}: model load {retriever.model_load_ms:.0f} ms, "
                        f"embeddings {retriever.cache_status}",
                    )
                )
            return self._dense[config.bi_encoder]

    def search(self, query: str, **overrides: Any) -> PipelineResult:
        """Run every stage for one query: BM25, dense, fusion, then the cross-encoder(s).

        Args:
            query: The query text; whitespace is collapsed.
            **overrides: `PipelineConfig` fields for this call only, e.g. `rerank_depth=20`,
                `cross_encoder="none"` or `blend=0.3`; the pipeline's own config is unchanged.

        Returns:
            A `PipelineResult` with every stage's `RankedList` (`bm25`, `dense`, `fused`, and `coarse`
            and `reranked` when a cross-encoder ran), wall-clock timings per stage, and messages that say
            what was clamped, cut by the latency budget or blended.

        Raises:
            ConfigError: The query is empty or too long, or an override is not a valid setting.
            ModelUnavailableError: A model resolves nowhere (local directory, cache, bundled package, hub).

        Example:
            >>> from reranker import Document, Pipeline, PipelineConfig, build_corpus
            >>> corpus = build_corpus([
            ...     Document("attention", "Attention weighs value vectors by softmax of query-key dot products."),
            ...     Document("rnn", "Recurrent networks read a sequence one step at a time."),
            ... ])
            >>> pipeline = Pipeline(corpus, PipelineConfig(cross_encoder=None))
            >>> result = pipeline.search("how does attention weigh values?")
            >>> result.after.top(1).doc_ids(), list(result.stages)
            (['attention'], ['bm25', 'dense', 'fused'])
            >>> pipeline.search("how does attention weigh values?", top_n=1).top_n
            1
        """
        config = dataclasses.replace(self.config, **overrides) if overrides else self.config
        config.validate()
        started = time.perf_counter()
        query = check_query(query)
        messages: list[str] = []
        depth = self._clamp("retrieval depth", config.retrieval_depth, len(self.corpus), messages)
        timings: list[StageTiming] = []
        stages: dict[str, RankedList] = {}

        bm25 = self._bm25_for(config)
        stages["bm25"], ms = _timed(bm25.search, query, depth)
        timings.append(StageTiming("bm25", ms, detail=f"{bm25.backend_name}, top {depth}"))

        dense = self._dense_for(config)
        stages["dense"], ms = _timed(dense.search, query, depth)
        timings.append(StageTiming("dense", ms, detail=f"{config.bi_encoder}, top {depth}"))

        weights = {"bm25": config.bm25_weight, "dense": config.dense_weight}
        stages["fused"], ms = _timed(
            reciprocal_rank_fusion, {"bm25": stages["bm25"], "dense": stages["dense"]}, k=config.rrf_k, weights=weights
        )
        timings.append(StageTiming("fused", ms, detail=f"RRF k={config.rrf_k}"))

        note = self._rerank_stages(query, stages["fused"], config, started, stages, timings, messages)
        return PipelineResult(query, dict(stages), tuple(timings), tuple(messages), config.top_n, note)

def check_query(query: str) -> str:
    """The query with its whitespace collapsed; raises ConfigError for an empty or overlong query."""
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("The query is empty: type a question or some keywords.")
    query = " ".join(query.split())
    if len(query) > MAX_QUERY_CHARS:
        raise ConfigError(f"The query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}.")
    return query


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - start) * 1000

