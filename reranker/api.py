"""Reranking from code: `Reranker` and `rerank` score (query, texts) with a chunk-aware cross-encoder.

A whole retrieval pipeline over a corpus is `Pipeline(corpus, PipelineConfig(...)).search(query)`.
This module covers the other common case: reranking texts that something else already retrieved
(a vector store, a search API, a RAG framework). Results reuse the pipeline's types: a
`RankedList` of `Hit`s (raw logit, sigmoid score, per-window `ChunkScore`s, deciding window)
plus a `StageTiming` with the call's latency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Unpack

from reranker.chunking import Aggregation
from reranker.corpus import Corpus
from reranker.cross_encoder import NORMALIZED_LABEL, RAW_LABEL, CrossEncoderReranker, ScoreCache
from reranker.cross_encoder_settings import CrossEncoderSettings, settings_from
from reranker.errors import ConfigError, ModelUnavailableError
from reranker.explain import ExplainOptions, Explanation, explain
from reranker.models import DEFAULT_CROSS_ENCODER, PROJECT_MODELS
from reranker.pipeline import AUTO, check_query, resolve_cross_encoder_spec
from reranker.speed import Precision
from reranker.types import Document, Hit, RankedList, StageTiming

logger = logging.getLogger(__name__)

STAGE = "reranked"
DEFAULTS = CrossEncoderSettings()  # the pipeline's cross-encoder defaults too (PipelineConfig inherits them)


@dataclass(frozen=True)
class RerankResult:
    """One reranking call: hits best first, the documents they point to, and the call's latency.

    Each `Hit` carries the cross-encoder's raw logit (`score`), sigmoid(logit) in [0, 1]
    (`normalized`), one `ChunkScore` per token window (`chunks`, character offsets into the
    document's `full_text`), the window that decided the score (`deciding_chunk`) and where a
    model that truncates instead of chunking would have stopped reading (`truncated_at`).
    Plain-string inputs get the ids "0", "1", ...: their position in the input list.
    `timing.ms` is the wall time of scoring; `timing.load_ms` is model loading, non-zero
    only on the first call after the model was loaded.
    """

    query: str
    model: str
    ranked: RankedList
    documents: Mapping[str, Document]
    positions: Mapping[str, int]
    timing: StageTiming
    messages: tuple[str, ...] = ()
    pairs_scored: int = 0
    pairs_cached: int = 0

    @property
    def hits(self) -> tuple[Hit, ...]:
        return self.ranked.hits

    @property
    def latency_ms(self) -> float:
        """Milliseconds this call spent tokenising, chunking and scoring (model loading excluded)."""
        return self.timing.ms

    def __len__(self) -> int:
        return len(self.ranked)

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.ranked)

    def document(self, hit: Hit | str) -> Document:
        """The document a hit (or a doc id) points to."""
        return self.documents[hit if isinstance(hit, str) else hit.doc_id]

    def position(self, hit: Hit | str) -> int:
        """The 0-based position of the hit's document in the input list."""
        return self.positions[hit if isinstance(hit, str) else hit.doc_id]

    def chunk_text(self, hit: Hit, index: int | None = None) -> str:
        """The text of one scored window of a hit; by default the window that decided its score."""
        index = hit.deciding_chunk if index is None else index
        chunk = next((c for c in hit.chunks if c.index == index), None)
        if chunk is None:
            raise ConfigError(f"document {hit.doc_id!r} has no window {index} (it has {len(hit.chunks)})")
        return self.document(hit).full_text[chunk.start : chunk.end]


def resolve_reranker_model(model: str) -> str:
    """The concrete model spec for `model`; "auto" means the hub default, else the first project model that resolves."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError('model is empty: pass a hub id, a local model directory, or "auto"', field="model")
    spec = resolve_cross_encoder_spec(model.strip())
    if spec is not None:
        return spec
    if model.strip() == AUTO:
        raise ModelUnavailableError(
            AUTO,
            [
                f"{DEFAULT_CROSS_ENCODER}: not in the local Hugging Face cache and the hub is unreachable",
                f"project models: {', '.join(PROJECT_MODELS) or 'none registered'} (none resolved)",
            ],
            "Fix: pass model= a local cross-encoder directory or a hub id you have cached, "
            "or run once with internet access so the default lands in ~/.cache/huggingface.",
        )
    raise ConfigError(f'model {model!r} turns reranking off; pass a hub id, a local model directory, or "auto"', field="model")


def _as_documents(texts: Iterable[str | Document]) -> list[Document]:
    if isinstance(texts, str | bytes) or not isinstance(texts, Iterable):
        raise ConfigError(f"texts must be a list of strings or Documents, not a single {type(texts).__name__}")
    documents: list[Document] = []
    seen: set[str] = set()
    for i, item in enumerate(texts):
        if isinstance(item, Document):
            doc = item
        elif isinstance(item, str):
            doc = Document(str(i), item)
        else:
            raise ConfigError(f"texts[{i}] is a {type(item).__name__}; pass str or reranker.Document")
        if doc.id in seen:
            raise ConfigError(f"texts[{i}] repeats the document id {doc.id!r}; ids must be unique")
        seen.add(doc.id)
        documents.append(doc)
    return documents


@dataclass(frozen=True)
class Reranker(CrossEncoderSettings):
    """A cross-encoder reranker for (query, list of texts), scoring long texts window by window.

    Texts longer than `chunk_tokens` (or than the model's input) are split into overlapping windows,
    every window is scored with the query, and the text's score is the max, mean or first window score;
    nothing is silently cut off. The model loads once per process and is shared by every `Reranker`
    with the same settings; each `Reranker` keeps its own cache of scores per (model, query, window), so a
    text scored again by the same `Reranker` costs nothing (`score_cache`; None when `cache=False`).

    The cross-encoder's settings (batch_size, max_length, chunk_tokens, chunk_overlap, aggregation,
    trust_remote_code, precision, device, the window caps, allow_untrained_head) are `CrossEncoderSettings`'
    fields, keyword-only, with the same defaults as the pipeline's: texts reranked here are scored as the
    pipeline's cross-encoder stage would score them.

    Args:
        model: A hub id, a local directory, or "auto": the first model that resolves of
            `cross-encoder/ms-marco-MiniLM-L6-v2` (the hub or the local cache) and then the cross-encoders
            fine-tuned in this project, in `reranker.models.PROJECT_MODELS` order.
        top_n: Texts to return, best first; None keeps every text.
        cache: Reuse scores of (query, window) pairs this `Reranker` scored before (its own bounded cache).

    Raises:
        ConfigError: A setting is out of range (e.g. `chunk_overlap >= chunk_tokens`), or `model` is empty.
        ModelUnavailableError: The model resolves nowhere; the message lists what was tried and the fix.

    Example:
        >>> from reranker import Reranker
        >>> reranker = Reranker(model="auto", top_n=2)
        >>> result = reranker.rerank("what does attention weigh?", [
        ...     "Attention weighs value vectors by softmax of query-key dot products.",
        ...     "Sourdough is leavened by wild yeast.",
        ...     "Recurrent networks carry a hidden state from step to step.",
        ... ])
        >>> [hit.rank for hit in result], all(0.0 <= hit.normalized <= 1.0 for hit in result)
        ([1, 2], True)
    """

    model: str = AUTO
    top_n: int | None = None
    cache: bool = True
    resolved_model: str = field(init=False, default="")

    def __post_init__(self) -> None:
        _check_top_n(self.top_n)
        self.validate()
        object.__setattr__(self, "resolved_model", resolve_reranker_model(self.model))
        engine = CrossEncoderReranker(self.resolved_model, settings_from(self), cache=ScoreCache() if self.cache else None)
        object.__setattr__(self, "_engine", engine)

    @property
    def score_cache(self) -> ScoreCache | None:
        """The scores of (query, window) pairs this reranker scored (None when `cache=False`)."""
        return self._engine.cache

    @property
    def max_input_tokens(self) -> int:
        """Tokens the model reads per (query, window) pair."""
        return self._engine.max_length

    def rerank(self, query: str, texts: Iterable[str | Document], *, top_n: int | None = None) -> RerankResult:
        """Score every text against the query and return them best first.

        Args:
            query: The query text; whitespace is collapsed.
            texts: Strings (their ids become "0", "1", ... by position) or `Document`s with unique ids.
            top_n: Texts to return for this call; None uses the reranker's `top_n`.

        Returns:
            A `RerankResult`: the hits best first, each with its raw logit (`score`), sigmoid score
            (`normalized`), per-window scores and deciding window, plus the documents, their input
            positions and the call's latency.

        Raises:
            ConfigError: The query is empty or too long, `texts` is not a list of str or Document,
                a document id repeats, or `top_n` is below 1.

        Example:
            >>> from reranker import Document, Reranker
            >>> result = Reranker(model="auto").rerank("long documents", [Document("d1", "word " * 900)])
            >>> hit = result.hits[0]
            >>> len(hit.chunks) > 1, hit.score == max(chunk.raw for chunk in hit.chunks)
            (True, True)
        """
        query = check_query(query)
        documents = _as_documents(texts)
        top_n = self.top_n if top_n is None else top_n
        _check_top_n(top_n)
        positions = MappingProxyType({doc.id: i for i, doc in enumerate(documents)})
        by_id = MappingProxyType({doc.id: doc for doc in documents})
        if not documents:
            empty = RankedList(STAGE, (), RAW_LABEL, NORMALIZED_LABEL)
            return RerankResult(query, self.resolved_model, empty, by_id, positions, StageTiming(STAGE, 0.0))
        candidates = RankedList(
            "input", tuple(Hit(doc.id, i, 0.0, "input") for i, doc in enumerate(documents, start=1)), "input order"
        )
        start = time.perf_counter()
        output = self._engine.rerank(query, candidates, Corpus(tuple(documents)), depth=len(documents), stage=STAGE)
        ms = (time.perf_counter() - start) * 1000
        windows = sum(len(s.chunks) for s in output.scores)
        detail = f"{self.resolved_model}: {len(documents)} texts, {windows} windows, {output.pairs_cached} from cache"
        logger.debug("reranked %d texts in %.1f ms (%s)", len(documents), ms, detail)
        ranked = output.ranked.top(top_n) if top_n is not None else output.ranked
        return RerankResult(
            query,
            self.resolved_model,
            ranked,
            by_id,
            positions,
            StageTiming(STAGE, ms, output.load_ms, detail),
            output.messages,
            output.pairs_scored,
            output.pairs_cached,
        )

    def explain(self, query: str, text: str | Document, **options: Unpack[ExplainOptions]) -> Explanation:
        """Why a text scored as it did: each sentence's contribution to the logit of the window that decided it.

        The text is windowed and scored as `rerank` scores it. By default each sentence of the deciding window
        is removed in turn and the window scored again, the variants batched (passes of <= 1,280 tokens on a CPU), in fp32: a
        sentence's contribution is the window's logit minus the logit without it ("logit change"; positive
        means the sentence raised the score). See `reranker.explain` for the sentence rule and the methods.

        Args:
            query: The query text; whitespace is collapsed.
            text: A string, or a `Document` (its title and text, as the reranker reads it).
            method: "occlusion", or "integrated-gradients" on the input word embeddings (path from [PAD]
                tokens to the text, `steps` steps; slower, its spans add up to the score minus the baseline's).
            granularity: "sentence", or "tokens" for fixed spans of `span_tokens` tokens.
            span_tokens: Tokens per span with `granularity="tokens"`.
            steps: Integrated-gradients steps.
            window: Index of the window to explain; None: the window that decided the score.
            (All but query and text are keyword-only, with `reranker.explain.explain`'s defaults.)

        Returns:
            An `Explanation`: the window's fp32 logit (`score`), the window (`window`, offsets into the text),
            one `SpanContribution` per sentence or span in text order (`spans`: offsets, text, `delta` in
            logits), the method, the unit and the milliseconds it took.

        Raises:
            ConfigError: Empty query or text, an unknown method or granularity, or a window that does not exist.

        Example:
            >>> from reranker import Reranker
            >>> explanation = Reranker(model="auto").explain(
            ...     "what causes ocean tides?",
            ...     "Bread needs yeast. Tides follow the pull of the Moon. Rain falls in May.",
            ... )
            >>> [span.text for span in explanation.spans]
            ['Bread needs yeast.', 'Tides follow the pull of the Moon.', 'Rain falls in May.']
            >>> explanation.method, explanation.unit, explanation.precision
            ('occlusion', 'logit change', 'fp32')
        """
        query = check_query(query)
        if isinstance(text, Document):
            text = text.full_text
        elif not isinstance(text, str):
            raise ConfigError(f"text must be a str or a reranker.Document, not {type(text).__name__}")
        return explain(self._engine, query, text, **options)


def rerank(
    query: str,
    texts: Iterable[str | Document],
    model: str = AUTO,
    *,
    top_n: int | None = None,
    chunk_tokens: int = DEFAULTS.chunk_tokens,
    chunk_overlap: int = DEFAULTS.chunk_overlap,
    aggregation: Aggregation = DEFAULTS.aggregation,
    precision: Precision = DEFAULTS.precision,
) -> RerankResult:
    """Rerank texts for a query in one call: `Reranker(model, ...).rerank(query, texts)`.

    The model loads once per process, but each call has a new score cache: to reuse the scores of texts
    reranked before, keep one `Reranker` and call its `rerank`.

    Args:
        query: The query text.
        texts: Strings or `Document`s to score against the query.
        model: A hub id, a local directory, or "auto" (see `Reranker`).
        top_n: Texts to return, best first; None keeps every text.
        chunk_tokens: Tokens per window of a long text.
        chunk_overlap: Tokens consecutive windows share.
        aggregation: A text's score from its window scores: "max", "mean" or "first".
        precision: "auto", "fp32", "bf16" or "fp16" (see `Reranker`).

    Returns:
        A `RerankResult`, hits best first.

    Raises:
        ConfigError: Empty query, bad texts or an out-of-range setting.
        ModelUnavailableError: The model resolves nowhere.

    Example:
        >>> from reranker import rerank
        >>> result = rerank("capital of France", ["Paris is the capital of France.", "Bread needs yeast."], top_n=1)
        >>> len(result), result.hits[0].rank
        (1, 1)
    """
    reranker = Reranker(
        model,
        top_n=top_n,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        aggregation=aggregation,
        precision=precision,
    )
    return reranker.rerank(query, texts)


def _check_top_n(top_n: int | None) -> None:
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise ConfigError(f"top_n must be a whole number of at least 1, or None for all (got {top_n!r})", field="top_n")
