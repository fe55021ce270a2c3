"""Cross-encoder stage: batched scoring of (query, document window) pairs, chunk-aware.

A document longer than the model's input is split into overlapping token windows that each fit
together with the query; every window is scored and the document gets max, mean or first.
Scores are kept as the model's raw logit and as sigmoid(logit) in [0, 1].
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from reranker.cache import BoundedLRU
from reranker.chunking import Window, aggregate, token_windows
from reranker.corpus import Corpus
from reranker.cross_encoder_settings import (  # noqa: F401  (MAX_WINDOWS_*, check_window_caps: public names here too)
    MAX_WINDOWS_PER_DOCUMENT,
    MAX_WINDOWS_PER_QUERY,
    CrossEncoderSettings,
    check_window_caps,
)
from reranker.engines.jobs import PairJob, ScorerSpec, active_deferral
from reranker.input_policy import UNCHANGED, InputPolicy, PairPlan, cut_ids, plan_pairs, shorten_middle
from reranker.models import LoadedModel, has_ranking_head, load_cross_encoder, untrained_head_message
from reranker.pairs import PairTemplate, length_batches
from reranker.project_models import recommended_blend, recommended_input_policy
from reranker.speed import (
    CPU_PASS_TOKENS,
    MKL_CBWR,
    PAIR_COSTS,
    Precision,
    configure_threads,
    select_device,
    select_precision,
    timed_ms,
    weights_in,
)
from reranker.types import ChunkScore, Document, Hit, RankedList

logger = logging.getLogger(__name__)

RAW_LABEL = "cross-encoder logit (unbounded; higher is more relevant; comparable within one model only)"
NORMALIZED_LABEL = "sigmoid(logit), 0 to 1 (a relevance score, not a calibrated probability)"
MIN_DOCUMENT_TOKENS = UNCHANGED.min_window_tokens
SCORE_CACHE_ENTRIES = 200_000  # a ScoreCache's default bound, in pairs (each entry keeps its window's text)


@dataclass(frozen=True)
class DocumentScore:
    """A document's aggregated score and the per-window scores behind it."""

    doc_id: str
    raw: float
    normalized: float
    chunks: tuple[ChunkScore, ...]
    deciding_chunk: int
    truncated_at: int | None


@dataclass(frozen=True)
class RerankOutput:
    """One reranking: the list, each document's scores, notes, model loading (ms) and pairs scored vs cached."""

    ranked: RankedList
    scores: tuple[DocumentScore, ...]
    messages: tuple[str, ...] = ()
    load_ms: float = 0.0
    pairs_scored: int = 0
    pairs_cached: int = 0
    plan: PairPlan | None = None  # the pair layout the query got (reranker.input_policy)


class DocumentWindows(NamedTuple):
    """One document's windows to score (after the window caps) and where a truncating model would stop reading."""

    document: Document
    windows: list[Window]
    truncated_at: int | None


class WindowPlan(NamedTuple):
    """A query's documents cut into windows that fit next to it: what `score_documents` scores."""

    documents: list[DocumentWindows]
    pairs: list[tuple[str, str]]  # (query, window text) per window, document by document
    messages: list[str]  # the query's truncation, the window caps' cuts
    pair_ids: list[tuple[tuple[int, ...], tuple[int, ...]]]  # (query ids, window ids) of each pair


class ScoreCache(BoundedLRU[tuple[str, str, str], float]):
    """LRU cache of raw scores keyed by (model, query, window text): no pair is scored twice.

    Owned by whoever owns the documents scored (a `Pipeline`, a `Reranker`, a lone `CrossEncoderReranker`),
    never by the process: window texts are the owner's documents, and they go when the owner goes."""

    def __init__(self, max_entries: int = SCORE_CACHE_ENTRIES) -> None:
        super().__init__(max_entries)


class _OwnCache:
    """The default of `CrossEncoderReranker(cache=...)`: a new `ScoreCache` for that reranker alone."""

    def __repr__(self) -> str:
        return "OWN_CACHE"


OWN_CACHE = _OwnCache()
# One lock per loaded model (path, input length, device), as the model itself is shared by every reranker
# of the process (reranker.models); bounded by the models loaded, and holds no visitor data.
_inference_locks: dict[str, threading.Lock] = {}


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _logits_to_raw(logits: np.ndarray) -> np.ndarray:
    """One score per pair: the logit, or for multi-class heads the log-odds of the last class."""
    if logits.ndim == 1:
        return logits.astype(np.float64)
    if logits.shape[1] == 1:
        return logits[:, 0].astype(np.float64)
    logits = logits.astype(np.float64)
    last = logits[:, -1]
    rest = np.log(np.exp(logits[:, :-1] - last[:, None]).sum(axis=1)) + last
    return last - rest


def cap_windows(counts: Sequence[int], per_document: int | None, per_query: int | None) -> list[int]:
    """How many of each document's windows to score, in document order: at most `per_document` each;
    past `per_query` windows in all, later documents keep only their first window (every document
    is always scored)."""
    kept = [min(n, per_document) if per_document else n for n in counts]
    if per_query is None or sum(kept) <= per_query:
        return kept
    left = max(per_query - len(kept), 0)  # one window each is always kept
    out = []
    for n in kept:
        extra = min(n - 1, left)
        left -= extra
        out.append(1 + extra)
    return out


def window_cap_message(cut: Sequence[tuple[str, int, int]], per_document: int | None, per_query: int | None) -> str:
    shown = ", ".join(f"{doc_id} ({kept} of {total})" for doc_id, total, kept in cut[:5])
    more = f" and {len(cut) - 5} more" if len(cut) > 5 else ""
    return (
        f"Window cap: scored only the first windows of {len(cut)} long document(s): {shown}{more}. "
        f"The caps are {per_document or 'no limit'} windows per document and {per_query or 'no limit'} per query "
        "(raise them in the settings, or --max-windows-per-document / --max-windows-per-query, to read further)."
    )


class CrossEncoderReranker:
    """Reranks candidates with any sentence-transformers CrossEncoder (hub id or local directory)."""

    def __init__(
        self,
        model: str,
        settings: CrossEncoderSettings | None = None,
        *,
        cache: ScoreCache | _OwnCache | None = OWN_CACHE,
        **changes: Any,
    ) -> None:
        """Load `model` under `settings` (default: `CrossEncoderSettings()`); keyword `changes` replace some of
        its fields, e.g. `CrossEncoderReranker(model, chunk_tokens=256)`. The settings' fields read as
        attributes of the reranker (`reranker.chunk_tokens`), except `max_length`, `precision` and `device`,
        which hold what they resolved to on this machine.

        `cache` holds the raw scores of (query, window) pairs scored before, so none is scored twice. By default
        the reranker makes its own `ScoreCache` (bounded; it goes with the reranker). Pass one to share scores
        with other rerankers (a `Pipeline` passes its `score_cache` to every reranker it builds; the Trade-offs
        sweep its own ledger), or None to score every pair every time (benchmarks, Ray workers). The model
        itself is loaded once per process whatever the cache."""
        settings = dataclasses.replace(settings or CrossEncoderSettings(), **changes)
        settings.validate()
        self.settings = settings
        self.model_spec = model
        self.cache: ScoreCache | None = ScoreCache() if isinstance(cache, _OwnCache) else cache
        self.loaded: LoadedModel
        self.device_choice = select_device(settings.device)
        self.device = self.device_choice.device
        self.loaded, fresh = load_cross_encoder(
            model,
            max_length=settings.max_length,
            device=self.device,
            trust_remote_code=settings.trust_remote_code,
            allow_untrained_head=settings.allow_untrained_head,
        )
        self.untrained_head = not has_ranking_head(self.loaded.resolved.path)
        self.first_load_ms = self.loaded.load_ms if fresh else 0.0
        self.model = self.loaded.model
        self.tokenizer = self.model.tokenizer
        self.max_length = int(self.model.max_seq_length or 512)
        self.explicit_max_length = settings.max_length is not None
        self.precision_choice = select_precision(settings.precision, device=self.device)
        self.precision = self.precision_choice.precision
        configure_threads(device=self.device)
        self._model_key = f"{self.loaded.resolved.path}|{self.max_length}|{self.device}"
        # Precision is part of the score identity: fp16/bf16 logits differ from fp32 in the 4th decimal.
        self._cache_key = f"{self._model_key}|{self.precision}"
        self._lock = _inference_locks.setdefault(self._model_key, threading.Lock())
        # Token ids and offsets per document text: planning a depth, then scoring, tokenise each document
        # once, and windows reach the model as slices of those ids (never tokenised again as text).
        self._tokens = functools.lru_cache(maxsize=20_000)(self._tokenize)
        self._template = PairTemplate.from_tokenizer(self.tokenizer)
        if self._template is None:
            logger.info("%s: pair layout not reproducible from ids; windows are tokenised as text", model)

    def __getattr__(self, name: str) -> Any:
        # The settings' fields read as attributes (reranker.chunk_tokens); called only for names not set above.
        settings = self.__dict__.get("settings")
        if settings is not None and name in {f.name for f in dataclasses.fields(settings)}:
            return getattr(settings, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def tokens(self, text: str) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
        """A text's token ids and character offsets, no special tokens (cached; windows are slices of these)."""
        return self._tokens(text)

    def pair_query(self, query: str, policy: InputPolicy | None = None) -> tuple[str, tuple[int, ...], str | None]:
        """The query as it goes into every pair: (text, token ids, a message when it had to be cut).

        Without a policy (`UNCHANGED`), a query so long that fewer than 32 tokens would be left for the
        document keeps its first half of the model's input; `policy` (reranker.input_policy) can give long
        queries longer pairs and keep their start and end."""
        plan = self.plan_query(query, policy)
        query_ids = self._tokens(query)[0]
        if not plan.cut:
            return query, tuple(query_ids), None
        kept = cut_ids(query_ids, plan)
        which = "its first" if len(plan.kept) == 1 else "its start and end,"
        message = (
            f"The query is {plan.query_tokens} tokens; the model reads at most {plan.pair_tokens} per pair, "
            f"so the query was truncated to {which} {plan.kept_tokens} tokens."
        )
        return self.tokenizer.decode(kept), kept, message

    def plan_query(self, query: str, policy: InputPolicy | None = None) -> PairPlan:
        """How this query's pairs are laid out under `policy` (tokens per pair, query tokens kept, window)."""
        return plan_pairs(
            len(self._tokens(query)[0]),
            training_length=self.max_length,
            position_limit=self.position_limit,
            special_tokens=self.tokenizer.num_special_tokens_to_add(pair=True),
            chunk_tokens=self.chunk_tokens,
            policy=policy or UNCHANGED,
            # Text input is truncated by the model at max_length; an explicit max_length is the user's choice.
            length_fixed=self._template is None or self.explicit_max_length,
        )

    def dropped_text(self, query: str, plan: PairPlan) -> tuple[str, ...]:
        """The pieces of the query a cut plan leaves out, shortened for a note."""
        _, offsets = self._tokens(query)
        pieces, cursor = [], 0
        for start, end in (*plan.kept, (plan.query_tokens, plan.query_tokens)):
            if start > cursor:
                pieces.append(shorten_middle(query[offsets[cursor][0] : offsets[start - 1][1]]))
            cursor = end
        return tuple(pieces)

    @functools.cached_property
    def card_blend(self) -> float:
        """The fused-score blend this model's card recommends (0 without a card), read once per loaded model."""
        return recommended_blend(self.loaded.resolved.path) or 0.0

    @functools.cached_property
    def card_input_policy(self) -> InputPolicy:
        """The long-query input policy this model's card records (the plain layout without one), read once."""
        return recommended_input_policy(self.loaded.resolved.path)

    @property
    def position_limit(self) -> int:
        """The most tokens the model can read per pair (its position embeddings), at least its max_length."""
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        return max(int(limit), self.max_length) if isinstance(limit, int) else self.max_length

    @property
    def template(self) -> PairTemplate | None:
        """The pair layout model inputs are built with from token ids (None: this tokenizer needs text input)."""
        return self._template

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """Hold this model's inference lock with torch's threads set as for scoring (for code that runs the
        fp32 model itself, e.g. gradients for explanations)."""
        with self._lock:
            configure_threads(device=self.device)
            yield

    def _tokenize(self, text: str) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
        # verbose=False: documents longer than the model's limit are expected here (they get windows).
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return tuple(encoded["input_ids"]), tuple(map(tuple, encoded["offset_mapping"]))

    @property
    def per_pair_ms(self) -> float | None:
        """Measured milliseconds per freshly scored pair on this machine (None before the first scoring)."""
        return PAIR_COSTS.per_pair_ms(self._cache_key)

    @property
    def name(self) -> str:
        return self.model_spec

    def score_documents(
        self, query: str, documents: Sequence[Document], policy: InputPolicy | None = None
    ) -> tuple[list[DocumentScore], list[str], int, int]:
        """Score documents against a query: (scores, messages, pairs scored, pairs from cache)."""
        plan = self._plan(query, documents, policy)
        raw, scored = self._score_pairs(plan.pairs, plan.pair_ids)
        cursor = 0
        results = []
        for doc, windows, truncated_at in plan.documents:
            window_scores = raw[cursor : cursor + len(windows)]
            cursor += len(windows)
            chunks = tuple(
                ChunkScore(w.index, w.start, w.end, float(s), w.token_start, w.token_end)
                for w, s in zip(windows, window_scores, strict=True)
            )
            score, deciding = aggregate(list(window_scores), self.aggregation)
            results.append(DocumentScore(doc.id, score, sigmoid(score), chunks, deciding, truncated_at))
        return results, plan.messages, scored, len(plan.pairs) - scored

    def new_pairs_per_document(self, query: str, documents: Sequence[Document]) -> list[int]:
        """How many (query, window) pairs each document still needs scored (cached pairs are free)."""
        plan = self._plan(query, documents)
        counts, cursor = [], 0
        for entry in plan.documents:
            windows = entry.windows
            chunk = plan.pairs[cursor : cursor + len(windows)]
            cursor += len(windows)
            counts.append(sum(1 for q, d in chunk if self.cache is None or self.cache.get((self._cache_key, q, d)) is None))
        return counts

    def _plan(self, query: str, documents: Sequence[Document], policy: InputPolicy | None = None) -> WindowPlan:
        """Split documents into windows that fit next to the query (the pair layout `policy` gives it)."""
        pair_tokens = self.plan_query(query, policy).pair_tokens
        query, query_ids, truncated = self.pair_query(query, policy)
        messages: list[str] = [truncated] if truncated else []
        budget = pair_tokens - self.tokenizer.num_special_tokens_to_add(pair=True) - len(query_ids)
        window = min(self.chunk_tokens, budget)
        overlap = min(self.chunk_overlap, window // 2)

        plans: list[DocumentWindows] = []
        pairs: list[tuple[str, str]] = []
        pair_ids: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        all_windows = []
        for doc in documents:
            _, offsets = self._tokens(doc.full_text)
            all_windows.append(token_windows(offsets, window, overlap))
            plans.append(DocumentWindows(doc, [], offsets[budget - 1][1] if len(offsets) > budget else None))
        kept = cap_windows([len(w) for w in all_windows], self.max_windows_per_document, self.max_windows_per_query)
        cut = [(doc.id, len(w), n) for (doc, _, _), w, n in zip(plans, all_windows, kept, strict=True) if n < len(w)]
        if cut:
            messages.append(window_cap_message(cut, self.max_windows_per_document, self.max_windows_per_query))
        for i, ((doc, _, truncated_at), windows, n) in enumerate(zip(plans, all_windows, kept, strict=True)):
            plans[i] = DocumentWindows(doc, windows[:n], truncated_at)
            ids, _ = self._tokens(doc.full_text)
            pairs.extend((query, doc.full_text[w.start : w.end]) for w in windows[:n])
            pair_ids.extend((query_ids, ids[w.token_start : w.token_end]) for w in windows[:n])
        return WindowPlan(plans, pairs, messages, pair_ids)

    def _score_pairs(
        self,
        pairs: list[tuple[str, str]],
        pair_ids: list | None = None,
        *,
        precision: Precision | None = None,
        batch_size: int | None = None,
    ) -> tuple[list[float], int]:
        """Raw scores for pairs, and how many needed the model (the rest came from the cache).

        With `pair_ids` (the token ids of each pair) the model reads those ids directly. `precision`
        (default: the reranker's) and `batch_size` (default: the reranker's) apply to this call only."""
        precision = precision or self.precision
        batch_size = batch_size or self.batch_size
        cache_key = f"{self._model_key}|{precision}"
        scores: list[float | None] = [None] * len(pairs)
        todo: list[int] = []
        for i, (q, d) in enumerate(pairs):
            cached = self.cache.get((cache_key, q, d)) if self.cache is not None else None
            if cached is None:
                todo.append(i)
            else:
                scores[i] = cached
        deferral = active_deferral() if todo and self.cache is not None else None
        if deferral is not None:  # another engine scores these pairs (reranker.engines); raises ScoresPending
            deferral.defer(self._job(pairs, pair_ids, todo, precision, batch_size), self.cache, cache_key)
        if todo:
            with self._lock, timed_ms() as elapsed:
                configure_threads(device=self.device)
                todo_ids = [pair_ids[i] for i in todo] if pair_ids is not None else None
                raw = self.model_scores([pairs[i] for i in todo], todo_ids, precision=precision, batch_size=batch_size)
            PAIR_COSTS.record(cache_key, len(todo), elapsed[0])
            for i, value in zip(todo, raw, strict=True):
                scores[i] = float(value)
                if self.cache is not None:
                    self.cache.put((cache_key, *pairs[i]), float(value))
        return [float(s) for s in scores], len(todo)  # type: ignore[arg-type]

    def model_scores(
        self,
        pairs: Sequence[tuple[str, str]] | None,
        pair_ids: Sequence[tuple[Sequence[int], Sequence[int]]] | None = None,
        *,
        precision: str | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Raw scores of (query, window) pairs from the model itself, in the order given, with no cache.

        This is the one scoring function of every engine: `score_pairs` runs it in this process, a Ray
        actor (reranker.engines.ray) on a worker, on the same pairs in the same batches, so an fp32 run
        is identical on both. The model reads `pair_ids`, the (query ids, window ids) of each pair, when
        given and this tokenizer's pair layout is reproducible from ids (`template`), else the texts
        `pairs`. Pairs whose reduced-precision logits overflow are rescored in fp32.
        """
        precision = precision or self.precision
        batch_size = batch_size or self.batch_size
        by_ids = pair_ids is not None and self._template is not None
        if not by_ids and pairs is None:
            raise ValueError("model_scores needs the pairs' texts: this tokenizer's pair layout cannot be built from ids")

        def predict(indices: Sequence[int], precision: str) -> np.ndarray:
            if by_ids:
                return self._predict_ids([pair_ids[i] for i in indices], precision, batch_size)
            return self._predict([pairs[i] for i in indices], precision, batch_size)

        count = len(pair_ids) if by_ids else len(pairs)
        raw = predict(range(count), precision)
        bad = np.flatnonzero(~np.isfinite(raw))
        if len(bad):  # reduced precision overflowed: rescore those pairs in fp32
            logger.warning("%d pairs overflowed in %s; rescoring them in fp32", len(bad), precision)
            raw[bad] = predict(bad.tolist(), "fp32")
        return raw

    def scorer_spec(self, precision: str | None = None, batch_size: int | None = None) -> ScorerSpec:
        """What another process needs to load this scorer and score exactly as `model_scores` does here: these
        settings, with the input length and precision this machine resolved (a worker picks its own device)."""
        settings = dataclasses.replace(
            self.settings,
            max_length=self.max_length,
            precision=precision or self.precision,
            batch_size=batch_size or self.batch_size,
        )
        return ScorerSpec(
            model=self.model_spec,
            path=str(self.loaded.resolved.path),
            settings=settings,
            by_ids=self._template is not None,
            blas=os.environ.get(MKL_CBWR),
        )

    def _job(self, pairs, pair_ids, todo: list[int], precision: str, batch_size: int) -> PairJob:
        """The pairs `todo` as one job for another engine: token ids where the model reads ids, else texts."""
        spec = self.scorer_spec(precision, batch_size)
        ids = None
        if pair_ids is not None and spec.by_ids:
            ids = tuple((tuple(pair_ids[i][0]), tuple(pair_ids[i][1])) for i in todo)
        else:
            spec = dataclasses.replace(spec, by_ids=False)
        return PairJob(spec, tuple(pairs[i] for i in todo), ids)

    def score_pairs(
        self,
        pairs: list[tuple[str, str]],
        pair_ids: list[tuple[Sequence[int], Sequence[int]]] | None = None,
        *,
        precision: Precision | None = None,
        batch_size: int | None = None,
    ) -> list[float]:
        """Raw scores for (query, text) pairs as given (no windowing), through the cache.

        `pair_ids`, the (query ids, text ids) of each pair, are what the model reads when given (the texts
        then only key the cache); `precision` and `batch_size` override the reranker's for this call."""
        return self._score_pairs(pairs, pair_ids, precision=precision, batch_size=batch_size)[0]

    def score_pairs_counted(self, pairs: list[tuple[str, str]], pair_ids=None, **call: Any) -> tuple[list[float], int]:
        """`score_pairs` (the same arguments), and how many of the pairs the model scored (the rest came from the cache)."""
        return self._score_pairs(pairs, pair_ids, **call)

    def _predict(self, pairs: list[tuple[str, str]], precision: str, batch_size: int | None = None) -> np.ndarray:
        import torch

        logits = weights_in(self.model, self._model_key, precision).predict(
            pairs,
            batch_size=batch_size or self.batch_size,
            activation_fn=torch.nn.Identity(),
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return _logits_to_raw(np.asarray(logits, dtype=np.float32))

    def _predict_ids(
        self, items: list[tuple[Sequence[int], Sequence[int]]], precision: str, batch_size: int | None = None
    ) -> np.ndarray:
        """Raw scores of (query ids, window ids) pairs, batched by length so padding stays small."""
        import torch

        model = weights_in(self.model, self._model_key, precision)
        template = self._template
        assert template is not None
        out = np.empty(len(items), dtype=np.float32)
        specials = self.tokenizer.num_special_tokens_to_add(pair=True)
        lengths = [len(q) + len(d) + specials for q, d in items]
        # fp32 on a CPU runs faster in small passes (CPU_PASS_TOKENS); reduced precision on AMX was measured in
        # full batches, and oneDNN compiles a kernel per batch shape there, so it keeps them.
        max_tokens = CPU_PASS_TOKENS if self.device == "cpu" and precision == "fp32" else None
        with torch.inference_mode():
            for batch in length_batches(lengths, batch_size or self.batch_size, max_tokens):
                features = {k: v.to(model.device) for k, v in template.batch([items[i] for i in batch]).items()}
                scores = model({**features, "modality": "text"})["scores"].float().cpu().numpy()
                out[batch] = _logits_to_raw(scores)
        return out

    def rerank(
        self,
        query: str,
        candidates: RankedList,
        corpus: Corpus,
        *,
        depth: int,
        stage: str = "reranked",
        policy: InputPolicy | None = None,
    ) -> RerankOutput:
        """Score the top `depth` candidates and return them reordered by the cross-encoder (pairs laid out by
        `policy`, reranker.input_policy; None: as before long queries had a policy)."""
        pool = candidates.hits[:depth]
        documents = [corpus[hit.doc_id] for hit in pool]
        start_loaded = self.first_load_ms
        self.first_load_ms = 0.0
        scores, messages, scored, cached = self.score_documents(query, documents, policy)
        by_id = {hit.doc_id: hit for hit in pool}
        order = sorted(scores, key=lambda s: (-s.raw, by_id[s.doc_id].rank))
        hits = tuple(
            Hit(
                doc_id=s.doc_id,
                rank=r,
                score=s.raw,
                stage=stage,
                normalized=s.normalized,
                chunks=s.chunks,
                deciding_chunk=s.deciding_chunk,
                truncated_at=s.truncated_at,
                sources=by_id[s.doc_id].sources,
            )
            for r, s in enumerate(order, start=1)
        )
        ranked = RankedList(stage, hits, RAW_LABEL, NORMALIZED_LABEL)
        if self.untrained_head:
            messages = [f"Warning: {untrained_head_message(self.model_spec)}", *messages]
        plan = self.plan_query(query, policy)
        return RerankOutput(ranked, tuple(scores), tuple(messages), start_loaded, scored, cached, plan)

