"""The ranker interface: what a reranking stage needs from a model.

A new kind of ranker (an LLM or late-interaction reranker, a hosted API, a lexical baseline) implements
`Ranker` and is named wherever a cross-encoder can be: `ranker:MODULE:FACTORY`, e.g.
`--cross-encoder ranker:mypackage.rankers:ColbertRanker` on the command line, `rerank:ranker:...` or a bare
`ranker:...` in a Compare or Evaluate configuration, `PipelineConfig(cross_encoder="ranker:...")` in code.
The pipeline imports `FACTORY` from `MODULE`, calls it with no arguments, keeps the ranker as it keeps
loaded cross-encoders, and runs it as its reranking stage; the engines run it in the process that runs
the queries (only cross-encoder pairs travel to Ray). The pipeline, Compare, Evaluate and the engines
need no change for it.

The cross-encoder stage (`reranker.cross_encoder.CrossEncoderReranker`) keeps its own richer path (token
windows, score cache, latency budget, the model card's blend).

Naming a ranker runs code (its module's import and FACTORY), and specs arrive from the page's model boxes, so a
spec loads only when the server or user listed it: `RERANK_LENS_RANKERS`, comma-separated `MODULE:FACTORY`
entries (or `MODULE:*` for every factory of a module). Nothing is allowed by default; a spec not listed is
refused before anything is imported.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from reranker.errors import ConfigError
from reranker.types import Document, Hit, RankedList

RANKER_PREFIX = "ranker:"
ALLOWED_ENV = "RERANK_LENS_RANKERS"  # comma-separated MODULE:FACTORY (or MODULE:*) that may be loaded
FIELD = "cross_encoder"  # the setting a bad ranker spec was given in


@runtime_checkable
class Ranker(Protocol):
    """Scores (query, text) pairs and orders candidate documents for a query."""

    name: str

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """One score per text, higher is more relevant, in the order given."""
        ...

    def rerank(self, query: str, candidates: Sequence[Document]) -> RankedList:
        """The candidates best first (stage "reranked"); ties keep the candidates' order."""
        ...


def rank_by_scores(ranker: Ranker, query: str, candidates: Sequence[Document], score_label: str) -> RankedList:
    """`Ranker.rerank` for a ranker that scores each document's full text on its own: sort by `score`."""
    scores = ranker.score(query, [doc.full_text for doc in candidates])
    if len(scores) != len(candidates):
        raise ValueError(f"{ranker.name}: {len(scores)} scores for {len(candidates)} texts")
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
    hits = tuple(Hit(candidates[i].id, rank, float(scores[i]), "reranked") for rank, i in enumerate(order, start=1))
    return RankedList("reranked", hits, score_label)


def is_ranker_spec(spec: str | None) -> bool:
    return isinstance(spec, str) and spec.startswith(RANKER_PREFIX)


def allowed_rankers() -> set[str]:
    """The `MODULE:FACTORY` (or `MODULE:*`) entries of $RERANK_LENS_RANKERS."""
    return {entry.strip() for entry in os.environ.get(ALLOWED_ENV, "").split(",") if entry.strip()}


def is_allowed(module_name: str, attribute: str) -> bool:
    allowed = allowed_rankers()
    return f"{module_name}:{attribute}" in allowed or f"{module_name}:*" in allowed


def load_ranker(spec: str) -> Ranker:
    """The ranker a `ranker:MODULE:FACTORY` spec names, built by calling FACTORY with no arguments."""
    target = spec.removeprefix(RANKER_PREFIX)
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"ranker {spec!r}: write ranker:MODULE:FACTORY, e.g. ranker:mypackage.rankers:MyRanker", field=FIELD)
    if not is_allowed(module_name, attribute):
        raise ConfigError(
            f"ranker {spec!r} is not allowed here: loading it would run its code. To allow it, start the app or "
            f"command with {ALLOWED_ENV}={module_name}:{attribute} (comma-separated, MODULE:* for a whole module).",
            field=FIELD,
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"ranker {spec!r} cannot be imported ({exc}); is its package installed?", field=FIELD) from None
    ranker = factory() if callable(factory) else factory
    if not isinstance(ranker, Ranker):
        raise ConfigError(f"ranker {spec!r}: {attribute}() made a {type(ranker).__name__}, not a Ranker", field=FIELD)
    return ranker
