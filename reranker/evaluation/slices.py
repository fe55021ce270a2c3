"""Where reranking fails: the per-query change a reranker made (its metric minus the list before reranking),
grouped into slices of the queries by what they have in common.

Slices (each query falls in one bin of each):
- query type: the `metadata.type` of queries.jsonl, when the dataset has one;
- query length in words;
- relevant document length: the mean length in words of the query's relevant documents;
- truncation: whether a relevant document is longer than the model's input and whether its deciding
  window lies past the point where a truncating model stops reading (as the Chunks tab marks it);
- lexical overlap: the share of the query's words (stopwords left out) that occur in its relevant documents;
- first relevant before reranking: the rank of the first relevant document in the list reranking started from.
Each slice has its number of queries, helped/hurt counts and the mean change with a bootstrap 95% interval.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reranker.corpus import Corpus, Qrels
from reranker.evaluation.analysis import EvaluationReport, QueryDelta, query_deltas
from reranker.evaluation.uncertainty import bootstrap_interval
from reranker.types import PipelineResult

WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    "a an and are as at be by do does for from how in is it its of on or that the this to was what when where which "
    "who why with".split()
)
FEATURES = (
    "query type",
    "query length",
    "relevant document length",
    "truncation",
    "lexical overlap",
    "first relevant before reranking",
)
QUERY_LENGTH_BINS = ((2, "1–2 words"), (5, "3–5 words"), (10, "6–10 words"), (None, "11+ words"))
DOC_LENGTH_BINS = ((100, "≤ 100 words"), (300, "101–300 words"), (1000, "301–1000 words"), (None, "> 1000 words"))
OVERLAP_BINS = ((0.25, "< 25% of query words"), (0.5, "25–50%"), (0.75, "50–75%"), (None, "≥ 75%"))
RANK_BINS = ((1, "rank 1"), (3, "rank 2–3"), (10, "rank 4–10"), (30, "rank 11–30"), (None, "rank 31+"))
NOT_RETRIEVED = "not retrieved"
FITS, CUT_BEFORE, CUT_PAST, NOT_RERANKED = (
    "relevant docs fit the model input",
    "relevant doc cut, decided before the cut",
    "relevant doc decided past the cut",
    "no relevant doc reranked",
)
LABEL_ORDER = {
    label: i
    for i, label in enumerate(
        [label for bins in (QUERY_LENGTH_BINS, DOC_LENGTH_BINS, OVERLAP_BINS, RANK_BINS) for _, label in bins]
        + [NOT_RETRIEVED, FITS, CUT_BEFORE, CUT_PAST, NOT_RERANKED]
    )
}


@dataclass(frozen=True)
class Slice:
    """The queries sharing one bin of one feature, and what reranking did to them."""

    feature: str
    label: str
    queries: int
    mean_delta: float
    ci95: tuple[float, float]
    helped: int
    hurt: int


def _bin(value: float, bins: Sequence[tuple[float | None, str]], *, inclusive: bool = True) -> str:
    for upper, label in bins:
        if upper is None or (value <= upper if inclusive else value < upper):
            return label
    return bins[-1][1]


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def lexical_overlap(query: str, relevant_texts: Sequence[str]) -> float:
    """Share of the query's distinct words (stopwords left out, unless that leaves none) found in the relevant texts."""
    terms = set(words(query))
    content = terms - STOPWORDS or terms
    if not content:
        return 0.0
    seen = set().union(*(set(words(t)) for t in relevant_texts)) if relevant_texts else set()
    return len(content & seen) / len(content)


def first_relevant_rank(result: PipelineResult, grades: Mapping[str, int]) -> int | None:
    """Rank of the first relevant document in the list reranking started from (None: not retrieved)."""
    return next((hit.rank for hit in result.before.hits if grades.get(hit.doc_id, 0) > 0), None)


def truncation_label(result: PipelineResult, grades: Mapping[str, int], stage: str = "reranked") -> str:
    """Whether the query's reranked relevant documents fit the model's input, were cut but decided by a window a
    truncating model reads, or were decided by a window reaching past the cut."""
    ranked = result.stages.get(stage)
    scored = [h for h in ranked.hits if grades.get(h.doc_id, 0) > 0 and h.chunks] if ranked is not None else []
    if not scored:
        return NOT_RERANKED
    if any(_decided_past_cut(h.chunks, h.deciding_chunk, h.truncated_at) for h in scored):
        return CUT_PAST
    return CUT_BEFORE if any(h.truncated_at is not None for h in scored) else FITS


def _decided_past_cut(chunks, deciding: int | None, truncated_at: int | None) -> bool:
    if truncated_at is None or deciding is None or not 0 <= deciding < len(chunks):
        return False
    return chunks[deciding].end > truncated_at


def query_features(
    deltas: Sequence[QueryDelta],
    results: Mapping[str, PipelineResult],
    qrels: Qrels,
    corpus: Corpus,
    query_types: Mapping[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """Query id -> feature -> bin label, for each query of `deltas` (query type only where the metadata has one)."""
    out: dict[str, dict[str, str]] = {}
    for d in deltas:
        grades = qrels.get(d.query_id, {})
        relevant = [corpus[doc].full_text for doc, g in grades.items() if g > 0 and doc in corpus]
        features: dict[str, str] = {}
        if query_types and d.query_id in query_types:
            features["query type"] = query_types[d.query_id]
        features["query length"] = _bin(len(words(d.query)), QUERY_LENGTH_BINS)
        if relevant:
            mean_words = sum(len(words(t)) for t in relevant) / len(relevant)
            features["relevant document length"] = _bin(mean_words, DOC_LENGTH_BINS)
            features["lexical overlap"] = _bin(lexical_overlap(d.query, relevant), OVERLAP_BINS, inclusive=False)
        result = results.get(d.query_id)
        if result is not None:
            features["truncation"] = truncation_label(result, grades)
            rank = first_relevant_rank(result, grades)
            features["first relevant before reranking"] = NOT_RETRIEVED if rank is None else _bin(rank, RANK_BINS)
        out[d.query_id] = features
    return out


def slice_queries(deltas: Sequence[QueryDelta], features: Mapping[str, Mapping[str, str]]) -> list[Slice]:
    """One slice per (feature, bin) present, in FEATURES order then bin order, each with its mean change and interval."""
    groups: dict[tuple[str, str], list[QueryDelta]] = {}
    for d in deltas:
        for feature, label in features.get(d.query_id, {}).items():
            groups.setdefault((feature, label), []).append(d)
    order = {f: i for i, f in enumerate(FEATURES)}
    out = []
    for (feature, label), members in sorted(
        groups.items(), key=lambda kv: (order.get(kv[0][0], len(order)), LABEL_ORDER.get(kv[0][1], len(LABEL_ORDER)), kv[0][1])
    ):
        changes = [m.delta for m in members]
        out.append(
            Slice(
                feature,
                label,
                len(members),
                sum(changes) / len(changes),
                bootstrap_interval(changes),
                sum(c > 0 for c in changes),
                sum(c < 0 for c in changes),
            )
        )
    return out


def query_types_of(dataset_path: str | Path | None) -> dict[str, str]:
    """Query id -> `metadata.type` from a BEIR folder's queries.jsonl (empty when there is none)."""
    if not dataset_path:
        return {}
    path = Path(dataset_path) / "queries.jsonl"
    if not path.is_file():
        return {}
    out = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            meta = row.get("metadata") if isinstance(row, dict) else None
            if isinstance(meta, dict) and isinstance(meta.get("type"), str) and meta["type"].strip():
                out[str(row.get("_id"))] = meta["type"].strip()
    return out


def reranking_slices(
    report: EvaluationReport, name: str, corpus: Corpus, query_types: Mapping[str, str] | None = None, metric: str = "ndcg@10"
) -> list[Slice]:
    """The slices of one reranking configuration of `report`: its `metric` against the list before reranking."""
    deltas = query_deltas(report, name, metric)
    features = query_features(deltas, report.get(name).results, report.qrels, corpus, query_types)
    return slice_queries(deltas, features)


def report_slices(
    report: EvaluationReport, corpus: Corpus, query_types: Mapping[str, str] | None = None
) -> dict[str, list[Slice]]:
    """Reranking configuration name -> its slices, for every configuration that reranked without error."""
    return {
        r.name: reranking_slices(report, r.name, corpus, query_types)
        for r in report.configurations
        if r.ok and r.config.reranks
    }
