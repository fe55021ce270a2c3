"""The result types shared by every stage: one document, one hit, one ranked list, one pipeline result."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reranker.input_policy import InputNote


@dataclass(frozen=True)
class Document:
    """One retrievable unit. `full_text` is what models read; chunk spans index into it."""

    id: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True)
class ChunkScore:
    """The cross-encoder's score for one token window of a document.

    `start`/`end` are character offsets into `Document.full_text`; `raw` is the model's logit.
    """

    index: int
    start: int
    end: int
    raw: float
    token_start: int
    token_end: int


@dataclass(frozen=True)
class SourceRank:
    """Where a fused document came from: its rank and score in one input list, and its RRF share."""

    rank: int
    score: float
    contribution: float


@dataclass(frozen=True)
class Hit:
    """One document in one stage's ranking (rank is 1-based)."""

    doc_id: str
    rank: int
    score: float
    stage: str
    normalized: float | None = None
    chunks: tuple[ChunkScore, ...] = ()
    deciding_chunk: int | None = None
    truncated_at: int | None = None
    sources: Mapping[str, SourceRank] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class RankedList:
    """A stage's ranking, best first, with a human-readable label for its score scale."""

    stage: str
    hits: tuple[Hit, ...]
    score_label: str
    normalized_label: str | None = None

    def __len__(self) -> int:
        return len(self.hits)

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    def doc_ids(self) -> list[str]:
        return [hit.doc_id for hit in self.hits]

    def get(self, doc_id: str) -> Hit | None:
        return self._index.get(doc_id)

    def rank_of(self, doc_id: str) -> int | None:
        hit = self._index.get(doc_id)
        return hit.rank if hit else None

    def top(self, n: int) -> RankedList:
        return RankedList(self.stage, self.hits[:n], self.score_label, self.normalized_label)

    def as_run(self) -> dict[str, float]:
        """Doc id -> score, the shape evaluation libraries expect for one query."""
        return {hit.doc_id: hit.score for hit in self.hits}

    @property
    def _index(self) -> dict[str, Hit]:
        cached = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {hit.doc_id: hit for hit in self.hits}
            object.__setattr__(self, "_index_cache", cached)
        return cached


@dataclass(frozen=True)
class StageTiming:
    """Wall-clock milliseconds of one stage; `load_ms` is model loading or index building, kept apart."""

    stage: str
    ms: float
    load_ms: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class PipelineResult:
    """Everything one query produced: every stage's list, timings and user-facing notes."""

    query: str
    stages: Mapping[str, RankedList]
    timings: tuple[StageTiming, ...]
    messages: tuple[str, ...] = ()
    top_n: int = 10
    input_note: InputNote | None = None  # how a long query was laid out for the cross-encoder (reranker.input_policy)

    @property
    def before(self) -> RankedList:
        """The ranking before any cross-encoder: the fused list, or the first-stage list given to
        `RerankStages.rerank` (e.g. a TREC run's)."""
        return self.stages["fused"] if "fused" in self.stages else next(iter(self.stages.values()))

    @property
    def after(self) -> RankedList:
        """The final list: the last stage that ran."""
        return self.stages[self.final_stage]

    @property
    def final_stage(self) -> str:
        return next(reversed(list(self.stages)))

    @property
    def reranked(self) -> bool:
        return self.after is not self.before

    def ranks(self, doc_id: str) -> dict[str, int | None]:
        """The document's rank in every stage (None where the stage did not return it)."""
        return {name: ranked.rank_of(doc_id) for name, ranked in self.stages.items()}

    def timing(self, stage: str) -> StageTiming | None:
        return next((t for t in self.timings if t.stage == stage), None)
