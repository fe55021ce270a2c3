"""Rebuild corpus.jsonl from src/*.md and refresh the answer offsets in queries.jsonl.

The documents are edited as plain text in src/LNN.md (first line: the title, then a blank
line, then the body). This script writes them to corpus.jsonl in BEIR form and recomputes,
for every query, where its `answer_quote` sits in the answer document. Run it after editing
any source file, then run check_offsets.py (or the pytest corpus check) to verify:

    HF_HUB_OFFLINE=1 .venv/bin/python corpora/longdocs/tools/build_corpus.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_offsets import (
    CORPUS,
    QUERIES,
    SRC,
    answer_position,
    load_tokenizer,
    read_jsonl,
)


def read_source(path: Path) -> dict[str, str]:
    raw = path.read_text(encoding="utf-8")
    title, sep, body = raw.partition("\n\n")
    if not sep or "\n" in title.strip():
        raise SystemExit(f"{path}: expected a one-line title, a blank line, then the text")
    return {"_id": path.stem, "title": title.strip(), "text": body.strip()}


def main() -> int:
    docs = [read_source(p) for p in sorted(SRC.glob("L*.md"))]
    with CORPUS.open("w", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
    print(f"wrote {len(docs)} documents to {CORPUS}")

    if not QUERIES.exists():
        return 0
    tokenizer = load_tokenizer()
    by_id = {d["_id"]: d for d in docs}
    queries = read_jsonl(QUERIES)
    for q in queries:
        meta = q["metadata"]
        doc = by_id[meta["answer_doc"]]
        pos = answer_position(tokenizer, doc, meta["answer_quote"])
        meta["answer_char_offset"] = pos.char_offset
        meta["answer_token_offset"] = pos.token_offset
    with QUERIES.open("w", encoding="utf-8") as fh:
        for q in queries:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    print(f"refreshed answer offsets for {len(queries)} queries in {QUERIES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
