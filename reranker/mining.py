"""Training material for cross-encoders: dataset mixes, query splits, mined hard negatives, groups.

A training *group* is one query, its labelled relevant document first, then hard negatives: documents
the project's own first stage (BM25, dense, or both fused by RRF) ranks high for the query, plus any
documents judged not relevant (grade 0, e.g. WikiQA's labelled negatives), never a labelled positive.
Negatives are sampled afresh for every pass over the data.

Mining needs the first stage (bm25s, FAISS, the bi-encoder); training does not. So mined groups are
written to one compact file (gzip JSON, each text stored once) that a trainer on another machine,
a GPU without bm25s or FAISS for example, reads as is (`finetune --groups FILE`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from reranker.corpus import Dataset, Qrels, load_dataset
from reranker.errors import ConfigError, DataError
from reranker.types import RankedList

logger = logging.getLogger(__name__)

NegativeSource = Literal["fused", "bm25", "dense", "bm25+dense"]
NEGATIVE_SOURCES: tuple[str, ...] = ("fused", "bm25", "dense", "bm25+dense")
GROUPS_FORMAT = "rerank-lens-groups-v1"


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a training mix: `PATH[,max=N][,repeat=R][,negatives=SOURCE][,dev=N]`.

    max: training queries kept (a seeded sample of the training part; the held-out and dev parts never
    change with it); repeat: how often each of its groups appears per pass (to up-weight a small
    in-domain set); negatives: which first-stage list the hard negatives come from (default: the run's);
    dev: how many of its dev queries the dev figures use (0: none, e.g. where only BM25 is mined).
    """

    path: str
    max_queries: int | None = None
    repeat: int = 1
    negatives_from: NegativeSource | None = None
    dev_queries: int | None = None

    @classmethod
    def parse(cls, text: str) -> DatasetSpec:
        path, *options = [part.strip() for part in text.split(",")]
        if not path:
            raise ConfigError(f"dataset {text!r}: give a path first, e.g. corpora/knowledge,repeat=5")
        values: dict = {}
        names = {"max": "max_queries", "repeat": "repeat", "negatives": "negatives_from", "dev": "dev_queries"}
        for option in options:
            key, _, value = option.partition("=")
            if key not in names or not value:
                raise ConfigError(
                    f"dataset {text!r}: unknown option {option!r}; use max=N, repeat=N, negatives=SOURCE or dev=N"
                )
            if key == "negatives":
                if value not in NEGATIVE_SOURCES:
                    raise ConfigError(f"dataset {text!r}: negatives must be one of {', '.join(NEGATIVE_SOURCES)}")
                values[names[key]] = value
                continue
            try:
                number = int(value)
            except ValueError:
                raise ConfigError(f"dataset {text!r}: {key} must be a whole number, not {value!r}") from None
            if number < (1 if key == "repeat" else 0):
                raise ConfigError(f"dataset {text!r}: {key} must be at least {1 if key == 'repeat' else 0}")
            values[names[key]] = number
        return cls(path, **values)

    @property
    def name(self) -> str:
        return Path(self.path).name or self.path


@dataclass(frozen=True)
class QuerySplit:
    train: tuple[str, ...]
    dev: tuple[str, ...]
    heldout: tuple[str, ...]


@dataclass(frozen=True)
class Group:
    """One training example: a query, its relevant document first, then hard negatives."""

    query: str
    docs: tuple[str, ...]
    source: str


@dataclass
class Mined:
    """One dataset of the mix: its judgments, split, and first-stage lists per mined query."""

    spec: DatasetSpec
    dataset: Dataset
    positives: Qrels
    negatives: Mapping[str, tuple[str, ...]]
    split: QuerySplit
    lists: dict[str, dict[str, RankedList]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def fused(self, qid: str) -> RankedList:
        return self.lists[qid]["fused"]


def split_queries(query_ids: Sequence[str], dev_fraction: float, holdout_fraction: float, seed: int) -> QuerySplit:
    """Deterministic split by a seeded hash of each id: stable under reordering and added queries."""
    parts: dict[str, list[str]] = {"train": [], "dev": [], "heldout": []}
    for qid in query_ids:
        u = _unit_hash(seed, qid)
        part = "heldout" if u < holdout_fraction else "dev" if u < holdout_fraction + dev_fraction else "train"
        parts[part].append(qid)
    return QuerySplit(tuple(parts["train"]), tuple(parts["dev"]), tuple(parts["heldout"]))


def _unit_hash(seed: int, qid: str) -> float:
    return int(hashlib.sha256(f"{seed}:{qid}".encode()).hexdigest()[:12], 16) / 16**12


def seeded_sample(query_ids: Sequence[str], n: int | None, seed: int) -> tuple[str, ...]:
    """The first n ids in a seeded hash order: a sample that only grows when n grows."""
    if n is None or n >= len(query_ids):
        return tuple(query_ids)
    return tuple(sorted(query_ids, key=lambda q: _unit_hash(seed + 1, q))[:n])


def load_training_dataset(path: str, split: str) -> tuple[Dataset, Qrels, dict[str, tuple[str, ...]]]:
    """A dataset's usable judgments for `split`: (dataset, positives, labelled negatives per query)."""
    dataset = load_dataset(path)
    if not dataset.qrels:
        raise DataError(
            "this dataset has no relevance judgments; fine-tuning needs a BEIR folder with "
            f"queries.jsonl and qrels/{split}.tsv (query-id, corpus-id, score)",
            path=path,
        )
    qrels = dataset.split_qrels(split)
    for problem in dataset.problems:
        logger.warning("%s: %s", path, problem)
    usable = {qid: docs for qid, docs in qrels.items() if qid in dataset.queries}
    positives = {qid: {d: g for d, g in docs.items() if d in dataset.corpus and g > 0} for qid, docs in usable.items()}
    positives = {qid: docs for qid, docs in positives.items() if docs}
    negatives = {
        qid: tuple(d for d, g in usable[qid].items() if d in dataset.corpus and g <= 0) for qid in positives
    }
    dropped = [p for p in dataset.problems if f"{split}.tsv" in p]
    if not positives and dropped:
        raise DataError(
            f"no usable judgments in split {split!r}: {'; '.join(dropped)}. Check that queries.jsonl, "
            "corpus.jsonl and the qrels come from the same dataset (qrels point at missing documents or queries)",
            path=path,
        )
    return dataset, positives, negatives


def prepare(
    spec: DatasetSpec,
    *,
    split: str,
    dev_fraction: float,
    holdout_fraction: float,
    seed: int,
    max_queries: int | None = None,
    dev_queries: int | None = None,
) -> Mined:
    """Load one dataset of the mix and split its judged queries (before any cap, so held-out stays held out)."""
    dataset, positives, negatives = load_training_dataset(spec.path, split)
    ids = list(positives)
    if max_queries:  # the run-wide cap of quick trials: the first N judged queries
        ids = ids[:max_queries]
    split_ = split_queries(ids, dev_fraction, holdout_fraction, seed)
    dev_cap = spec.dev_queries if spec.dev_queries is not None else dev_queries
    split_ = QuerySplit(
        seeded_sample(split_.train, spec.max_queries, seed), seeded_sample(split_.dev, dev_cap, seed), split_.heldout
    )
    keep = set(split_.train) | set(split_.dev)
    return Mined(
        spec,
        dataset,
        {q: positives[q] for q in ids if q in keep},
        {q: negatives[q] for q in ids if q in keep},
        split_,
    )


def first_stage_lists(
    dataset: Dataset,
    queries: Sequence[str],
    *,
    sources: Iterable[str],
    depth: int,
    bi_encoder: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, RankedList]]:
    """The project's own first-stage lists per query (pipeline defaults): any of bm25, dense, fused.

    Same stages as `Pipeline.search` with `cross_encoder=None`, but queries are embedded in batches,
    and the dense index is built only when a dense or fused list is asked for.
    """
    from reranker.bm25 import BM25Retriever, Tokenizer
    from reranker.fusion import reciprocal_rank_fusion
    from reranker.pipeline import PipelineConfig

    wanted = set(sources)
    config = PipelineConfig(cross_encoder=None, retrieval_depth=max(100, depth))
    k = min(config.retrieval_depth, len(dataset.corpus))
    texts = [" ".join(dataset.queries[qid].split()) for qid in queries]
    bm25 = BM25Retriever(dataset.corpus, backend=config.bm25_backend, tokenizer=Tokenizer(stemmer=config.stemmer))
    dense_lists = _dense_lists(dataset, texts, k, bi_encoder or config.bi_encoder, config) if wanted - {"bm25"} else None
    out: dict[str, dict[str, RankedList]] = {}
    for row, (qid, text) in enumerate(zip(queries, texts, strict=True)):
        lists = {"bm25": bm25.search(text, k)}
        if dense_lists is not None:
            lists["dense"] = dense_lists[row]
        if "fused" in wanted:
            weights = {"bm25": config.bm25_weight, "dense": config.dense_weight}
            lists["fused"] = reciprocal_rank_fusion(
                {"bm25": lists["bm25"], "dense": lists["dense"]}, k=config.rrf_k, weights=weights
            )
        out[qid] = lists
        if progress:
            progress(row + 1, len(queries))
    return out


def _dense_lists(dataset: Dataset, texts: list[str], k: int, bi_encoder: str, config) -> list[RankedList]:
    from reranker.dense import SCORE_LABEL, DenseRetriever
    from reranker.types import Hit

    dense = DenseRetriever(dataset.corpus, bi_encoder, index=config.dense_index)
    vectors = dense.loaded.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
    scores, indices = dense.index.search(vectors, k)
    ids = [doc.id for doc in dataset.corpus.documents]
    return [
        RankedList(
            "dense",
            tuple(
                Hit(doc_id=ids[i], rank=r, score=float(s), stage="dense")
                for r, (s, i) in enumerate(zip(scores[row], indices[row], strict=True), start=1)
                if i >= 0
            ),
            SCORE_LABEL,
        )
        for row in range(len(texts))
    ]


def mine(
    mined: Mined,
    *,
    negatives_from: NegativeSource,
    candidates: int,
    bi_encoder: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Fill `mined.lists`: the negatives' source list for training queries, the fused list for dev queries."""
    source = mined.spec.negatives_from or negatives_from
    needs = {"bm25+dense": {"bm25", "dense"}}.get(source, {source})
    for queries, sources in ((mined.split.train, needs), (mined.split.dev, {"fused"})):
        if queries:
            mined.lists.update(
                first_stage_lists(
                    mined.dataset, queries, sources=sources, depth=candidates, bi_encoder=bi_encoder, progress=progress
                )
            )


def negative_pool(
    mined: Mined, qid: str, *, negatives_from: NegativeSource, candidates: int, rng: random.Random, n: int
) -> list[str]:
    """n negatives for a query: labelled negatives and the top `candidates` of the source list(s), no positive."""
    judged = mined.positives[qid]
    lists = mined.lists[qid]
    source = mined.spec.negatives_from or negatives_from

    def top(name: str) -> list[str]:
        return [h.doc_id for h in lists[name].hits[:candidates] if h.doc_id not in judged]

    labelled = [d for d in mined.negatives.get(qid, ()) if d not in judged]
    if source == "bm25+dense":
        first, second = top("bm25"), top("dense")
        half = math.ceil(n / 2)
        chosen = rng.sample(first, min(half, len(first)))
        rest = [d for d in dict.fromkeys([*second, *labelled]) if d not in chosen]
        chosen += rng.sample(rest, min(n - len(chosen), len(rest)))
        return chosen
    pool = list(dict.fromkeys([*top(source), *labelled]))
    return rng.sample(pool, min(n, len(pool)))


def build_groups(
    mined: Mined, *, negatives: int, negatives_from: NegativeSource, candidates: int, seed: int
) -> list[Group]:
    """One group per labelled positive of every training query, repeated `spec.repeat` times."""
    rng = random.Random(seed)
    corpus = mined.dataset.corpus
    groups = []
    for _ in range(mined.spec.repeat):
        for qid in mined.split.train:
            for positive in mined.positives[qid]:
                chosen = negative_pool(mined, qid, negatives_from=negatives_from, candidates=candidates, rng=rng, n=negatives)
                if not chosen:
                    continue
                docs = (corpus[positive].full_text, *(corpus[d].full_text for d in chosen))
                groups.append(Group(mined.dataset.queries[qid], docs, mined.name))
    return groups


def training_groups(
    mix: Sequence[Mined], *, epochs: float, negatives: int, negatives_from: NegativeSource, candidates: int, seed: int
) -> tuple[list[Group], int]:
    """Every pass's groups, each pass with fresh negatives and shuffled: (groups, groups per pass)."""
    rng = random.Random(seed)
    per_pass = 0
    groups: list[Group] = []
    for r in range(math.ceil(epochs)):
        batch = [
            g
            for m in mix
            for g in build_groups(m, negatives=negatives, negatives_from=negatives_from, candidates=candidates, seed=seed + r)
        ]
        per_pass = per_pass or len(batch)
        rng.shuffle(batch)
        groups += batch
    return groups[: round(epochs * per_pass)], per_pass


def save_groups(path: str | Path, groups: Sequence[Group], meta: Mapping | None = None) -> Path:
    """Write groups as gzip JSON with every text stored once (SQuAD paragraphs recur in many groups)."""
    index: dict[str, int] = {}
    rows = []
    for g in groups:
        ids = [index.setdefault(t, len(index)) for t in (g.query, *g.docs)]
        rows.append([g.source, ids])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as f:
        json.dump({"format": GROUPS_FORMAT, "meta": dict(meta or {}), "texts": list(index), "groups": rows}, f)
    tmp.replace(path)
    return path


def load_groups(path: str | Path) -> tuple[list[Group], dict]:
    """Groups and metadata written by `save_groups`."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"not a readable groups file ({exc})", path=str(path)) from None
    if data.get("format") != GROUPS_FORMAT:
        raise DataError(f"not a groups file of format {GROUPS_FORMAT}", path=str(path))
    texts = data["texts"]
    groups = [Group(texts[ids[0]], tuple(texts[i] for i in ids[1:]), source) for source, ids in data["groups"]]
    return groups, data.get("meta", {})

