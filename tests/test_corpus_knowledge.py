"""Corpus check for corpora/knowledge (BEIR layout): files, sizes, qrels and pool completeness.

The structural checks read the files only. The pool check runs the project's own first stages
(BM25, dense bi-encoder, RRF) once for the module and asserts that every passage they put in a
top 20 is judged, which is what makes the corpus's evaluation numbers trustworthy.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

DATASET = Path(__file__).resolve().parent.parent / "corpora" / "knowledge"
POOL_DEPTH = 20
MIN_WORDS, MAX_WORDS = 40, 200
QUERY_TYPES = {"keyword", "question", "ambiguous", "paraphrase"}


def _jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        assert line.strip(), f"{path.name}:{n} is blank"
        row = json.loads(line)
        assert isinstance(row, dict), f"{path.name}:{n} is not a JSON object"
        rows.append(row)
    return rows


def _qrels(split: str) -> list[tuple[str, str, int]]:
    path = DATASET / "qrels" / f"{split}.tsv"
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        assert next(reader) == ["query-id", "corpus-id", "score"], f"{path.name} needs the BEIR header"
        rows = []
        for row in reader:
            assert len(row) == 3, f"{path.name}: bad row {row}"
            rows.append((row[0], row[1], int(row[2])))
    return rows


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return _jsonl(DATASET / "corpus.jsonl")


@pytest.fixture(scope="module")
def queries() -> list[dict]:
    return _jsonl(DATASET / "queries.jsonl")


@pytest.fixture(scope="module")
def qrels() -> dict[str, list[tuple[str, str, int]]]:
    return {split: _qrels(split) for split in ("train", "test")}


@pytest.fixture(scope="module")
def judged(qrels) -> dict[str, dict[str, int]]:
    by_query: dict[str, dict[str, int]] = defaultdict(dict)
    for rows in qrels.values():
        for qid, did, grade in rows:
            by_query[qid][did] = grade
    return by_query


def test_corpus_passages_are_valid(corpus):
    assert len(corpus) >= 300
    ids = [doc.get("_id") for doc in corpus]
    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == len(ids), [i for i, c in Counter(ids).items() if c > 1]
    for doc in corpus:
        assert isinstance(doc.get("title"), str) and doc["title"].strip(), doc["_id"]
        assert isinstance(doc.get("text"), str) and doc["text"].strip(), doc["_id"]
        words = len(doc["text"].split())
        assert MIN_WORDS <= words <= MAX_WORDS, f"{doc['_id']} has {words} words"


def test_no_exact_duplicate_passages(corpus):
    texts = Counter(" ".join(doc["text"].lower().split()) for doc in corpus)
    assert max(texts.values()) == 1


def test_queries_are_valid(queries):
    assert len(queries) >= 60
    ids = [q["_id"] for q in queries]
    assert len(set(ids)) == len(ids)
    for q in queries:
        assert isinstance(q.get("text"), str) and q["text"].strip(), q["_id"]
        assert q.get("metadata", {}).get("type") in QUERY_TYPES, q["_id"]
    assert set(q["metadata"]["type"] for q in queries) == QUERY_TYPES
    first = next(q for q in queries if q["_id"] == "q001")
    assert first["text"] == "What is transformer attention mechanism?"


def test_qrels_point_at_known_queries_and_documents(corpus, queries, qrels):
    doc_ids = {doc["_id"] for doc in corpus}
    query_ids = {q["_id"] for q in queries}
    for split, rows in qrels.items():
        assert rows, f"{split}.tsv is empty"
        pairs = [(q, d) for q, d, _ in rows]
        assert len(set(pairs)) == len(pairs), f"{split}.tsv judges a pair twice"
        for qid, did, grade in rows:
            assert qid in query_ids, f"{split}: unknown query {qid}"
            assert did in doc_ids, f"{split}: unknown document {did}"
            assert grade in (0, 1, 2), f"{split}: grade {grade} for {qid}/{did}"


def test_every_query_is_judged_with_a_fully_relevant_passage(queries, judged):
    for q in queries:
        grades = judged.get(q["_id"], {})
        assert 2 in grades.values(), f"{q['_id']} has no grade-2 passage"
        assert 0 in grades.values(), f"{q['_id']} has no judged non-relevant passage"


def test_splits_are_disjoint_and_balanced(queries, qrels):
    train = {q for q, _, _ in qrels["train"]}
    test = {q for q, _, _ in qrels["test"]}
    assert not train & test
    assert train | test == {q["_id"] for q in queries}
    assert "q001" in test
    assert abs(len(train) - len(test)) <= 2


def test_classic_attention_example_is_judged(corpus, judged):
    """q001's fully relevant passage defines self-attention; the distractor set is present and graded lower."""
    by_title = {doc["title"]: doc["_id"] for doc in corpus}
    grades = judged["q001"]
    assert grades[by_title["Self-attention in the Transformer"]] == 2
    for title in (
        "Quadratic cost of attention in sequence length",
        "BERT architecture",
        "Recurrent alternatives to attention",
        "Attention in machine learning",
    ):
        assert grades.get(by_title[title], 0) < 2, title


@pytest.fixture(scope="module")
def first_stage_pools():
    """BM25, dense and fused top-20 lists of the project pipeline for every query (models load once).

    Uses the project's usual embedding cache, which is keyed by model and corpus content, so a
    second run skips encoding the corpus."""
    pytest.importorskip("sentence_transformers")
    from reranker.corpus import load_dataset
    from reranker.errors import ModelUnavailableError
    from reranker.pipeline import Pipeline, PipelineConfig

    ds = load_dataset(DATASET)
    try:
        pipeline = Pipeline(ds.corpus, PipelineConfig(cross_encoder=None, retrieval_depth=POOL_DEPTH))
    except ModelUnavailableError as exc:  # pragma: no cover - only without the bundled bi-encoder
        pytest.skip(f"bi-encoder not available offline: {exc}")
    pools = {}
    for q in _jsonl(DATASET / "queries.jsonl"):
        result = pipeline.search(q["text"])
        pools[q["_id"]] = {stage: list(result.stages[stage].doc_ids()[:POOL_DEPTH]) for stage in ("bm25", "dense", "fused")}
    return pools


@pytest.mark.slow
def test_pools_are_completely_judged(first_stage_pools, judged):
    missing = sorted(
        (qid, stage, did)
        for qid, lists in first_stage_pools.items()
        for stage, ids in lists.items()
        for did in ids
        if did not in judged.get(qid, {})
    )
    assert not missing, (
        f"{len(missing)} pooled passages are unjudged, e.g. {missing[:10]}; "
        "re-pool with corpora/knowledge/tools/pool.py and judge them"
    )
