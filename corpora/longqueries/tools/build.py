"""Build the long-query dev set: short judged questions turned into long queries by pasting context around them.

Four parts, each a BEIR folder under `corpora/longqueries/build/<part>/` (git-ignored; rebuilt by this
script), split `dev`:

- knowledge-context: the `knowledge` corpus's 35 training-split questions, each with one or two of the
  passages judged NOT relevant to it (graded 0 in the pool judgments, so on the same topic) pasted as context.
- scifact-context: 40 of the general model's 54 SciFact dev claims (models/minilm-l6-general/scifact.dev_queries.txt),
  each with a related, not relevant abstract (most words in common with the claim) pasted as context.
- squad-context: 36 SQuAD questions the general model never trained on, over the paragraphs of 12 articles,
  each with a neighbouring paragraph of the same article (not the one it was written about) as context.
- squad-neighbours: 36 whole paragraphs (60 words or more) of the same 12 articles as queries, the paragraphs
  before and after each as its targets (related passages, not answers, as an argument and its counter-argument);
  the query paragraphs are left out of that part's corpus.

The question goes after the context for two queries in three and before it for the third (a seeded hash of
the query id decides), as people paste. The judged documents are the original question's. Nothing is random:
every choice is a hash of ids, so the files are the same on every run; `manifest.json` records each output
file's sha256 and the query ids (tests/test_longqueries.py rebuilds and compares). The knowledge part's
queries and qrels are also kept in the repository (`knowledge-context/`), the parts derived from
../shared/datasets only as this script and the manifest.

    python corpora/longqueries/tools/build.py [--shared ../shared/datasets] [--out corpora/longqueries/build]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
REPO = HERE.parents[1]
MODEL_SPLITS = REPO / "models" / "minilm-l6-general"
PARTS = ("knowledge-context", "scifact-context", "squad-context", "squad-neighbours")
SCIFACT_QUERIES = 40
SQUAD_ARTICLES = 12
SQUAD_QUESTIONS_PER_ARTICLE = 3
CONTEXT_WORDS = 220  # a pasted abstract is cut at the first sentence end past this many words
WORD = re.compile(r"[a-z][a-z0-9-]{3,}")


def rank(key: str) -> str:
    """A stable pseudo-random order: sort by this."""
    return hashlib.sha256(key.encode()).hexdigest()


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with path.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            qid, doc, score = line.rstrip("\n").split("\t")
            qrels[qid][doc] = int(score)
    return qrels


def clip(text: str, words: int = CONTEXT_WORDS) -> str:
    """The text up to the first sentence end past `words` words (all of it when shorter)."""
    tokens = text.split()
    if len(tokens) <= words:
        return " ".join(tokens)
    for end in range(words, len(tokens)):
        if tokens[end].endswith((".", "?", "!")):
            return " ".join(tokens[: end + 1])
    return " ".join(tokens)


def long_query(qid: str, question: str, contexts: list[str]) -> str:
    context = " ".join(" ".join(c.split()) for c in contexts)
    if int(rank("order" + qid), 16) % 3 == 2:
        return f"{question} Context: {context}"
    return f"Context: {context} Question: {question}"


def write_part(out: Path, corpus_source: Path, queries: list[dict], qrels: dict[str, dict[str, int]]) -> None:
    """One BEIR folder: the corpus copied as is, the long queries, their judgments as split `dev`."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(corpus_source, out / "corpus.jsonl")
    with (out / "queries.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
        for query in queries:
            handle.write(json.dumps(query, ensure_ascii=False) + "\n")
    (out / "qrels").mkdir(exist_ok=True)
    with (out / "qrels" / "dev.tsv").open("w", encoding="utf-8", newline="\n") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for query in queries:
            for doc, score in sorted(qrels[query["_id"]].items()):
                handle.write(f"{query['_id']}\t{doc}\t{score}\n")


def knowledge_part(root: Path) -> tuple[list[dict], dict[str, dict[str, int]]]:
    source = REPO / "corpora" / "knowledge"
    texts = {d["_id"]: d["text"] for d in read_jsonl(source / "corpus.jsonl")}
    questions = {q["_id"]: q["text"] for q in read_jsonl(source / "queries.jsonl")}
    qrels = read_qrels(source / "qrels" / "train.tsv")
    queries, kept = [], {}
    for qid in sorted(qrels):
        relevant = {d: s for d, s in qrels[qid].items() if s > 0}
        unrelated = sorted((d for d, s in qrels[qid].items() if s == 0), key=lambda d: rank(qid + d))
        if not relevant or not unrelated:
            continue
        count = 1 + int(rank("count" + qid), 16) % 2
        contexts = [texts[d] for d in unrelated[:count]]
        lq = f"lk-{qid}"
        queries.append({"_id": lq, "text": long_query(lq, questions[qid], contexts), "metadata": {"source": qid}})
        kept[lq] = dict(qrels[qid])
    return queries, kept


def scifact_part(shared: Path) -> tuple[list[dict], dict[str, dict[str, int]]]:
    source = shared / "scifact"
    docs = read_jsonl(source / "corpus.jsonl")
    claims = {q["_id"]: q["text"] for q in read_jsonl(source / "queries.jsonl")}
    qrels = read_qrels(source / "qrels" / "train.tsv")
    dev = (MODEL_SPLITS / "scifact.dev_queries.txt").read_text().split()
    chosen = sorted(dev, key=lambda q: rank("scifact" + q))[:SCIFACT_QUERIES]
    words = {d["_id"]: set(WORD.findall((d["title"] + " " + d["text"]).lower())) for d in docs}
    by_id = {d["_id"]: d for d in docs}
    queries, kept = [], {}
    for qid in sorted(chosen, key=int):
        claim_words = set(WORD.findall(claims[qid].lower()))
        related = sorted(
            (d for d in words if d not in qrels[qid]), key=lambda d: (-len(claim_words & words[d]), rank(qid + d))
        )
        context = by_id[related[0]]
        lq = f"ls-{qid}"
        text = long_query(lq, claims[qid], [clip(context["title"] + ". " + context["text"])])
        queries.append({"_id": lq, "text": text, "metadata": {"source": qid, "context": related[0]}})
        kept[lq] = dict(qrels[qid])
    return queries, kept


def squad_part(shared: Path, out: Path) -> tuple[list[dict], dict[str, dict[str, int]], Path]:
    """SQuAD questions over a corpus of a few whole articles (written to `out`), so indexing stays cheap."""
    source = shared / "squad"
    docs = read_jsonl(source / "corpus.jsonl")
    articles: dict[str, list[dict]] = defaultdict(list)
    for doc in docs:
        articles[doc["title"]].append(doc)
    qrels = read_qrels(source / "qrels" / "train.tsv")
    heldout = set((MODEL_SPLITS / "squad.heldout_queries.txt").read_text().split())
    questions = {q["_id"]: q["text"] for q in read_jsonl(source / "queries.jsonl") if q["_id"] in heldout}
    by_doc: dict[str, list[str]] = defaultdict(list)
    for qid in questions:
        for doc in qrels.get(qid, {}):
            by_doc[doc].append(qid)
    titles = sorted(articles, key=lambda t: rank("squad" + t))[:SQUAD_ARTICLES]
    queries, kept = [], {}
    for title in sorted(titles):
        paragraphs = articles[title]
        position = {d["_id"]: i for i, d in enumerate(paragraphs)}
        candidates = sorted((q for d in paragraphs for q in by_doc[d["_id"]]), key=lambda q: rank("q" + q))
        for qid in sorted(candidates[:SQUAD_QUESTIONS_PER_ARTICLE], key=lambda q: int(q.split("-")[1])):
            (gold,) = qrels[qid]
            at = position[gold]
            neighbour = paragraphs[at - 1] if at > 0 else paragraphs[at + 1]
            lq = f"lq-{qid}"
            text = long_query(lq, questions[qid], [neighbour["text"]])
            queries.append({"_id": lq, "text": text, "metadata": {"source": qid, "context": neighbour["_id"]}})
            kept[lq] = {gold: 1, neighbour["_id"]: 0}
    out.mkdir(parents=True, exist_ok=True)
    corpus = out / "articles.jsonl"
    with corpus.open("w", encoding="utf-8", newline="\n") as handle:
        for title in sorted(titles):
            for doc in articles[title]:
                handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return queries, kept, corpus


def squad_neighbours_part(shared: Path, out: Path) -> tuple[list[dict], dict[str, dict[str, int]], Path]:
    """A whole paragraph as the query, the paragraphs next to it in its article as the targets: related
    passages, not answers (like an argument and its counter-argument). The query paragraphs leave the corpus."""
    docs = read_jsonl(shared / "squad" / "corpus.jsonl")
    articles: dict[str, list[dict]] = defaultdict(list)
    for doc in docs:
        articles[doc["title"]].append(doc)
    titles = sorted(articles, key=lambda t: rank("squad" + t))[:SQUAD_ARTICLES]
    queries, kept, removed = [], {}, set()
    for title in sorted(titles):
        paragraphs = articles[title]
        inner = [i for i in range(1, len(paragraphs) - 1) if len(paragraphs[i]["text"].split()) >= 60]
        chosen: list[int] = []
        for i in sorted(inner, key=lambda i: rank("paragraph" + paragraphs[i]["_id"])):
            if all(abs(i - j) > 2 for j in chosen):
                chosen.append(i)
            if len(chosen) == SQUAD_QUESTIONS_PER_ARTICLE:
                break
        for i in sorted(chosen):
            lq = f"ln-{paragraphs[i]['_id']}"
            queries.append({"_id": lq, "text": paragraphs[i]["text"], "metadata": {"source": paragraphs[i]["_id"]}})
            kept[lq] = {paragraphs[i - 1]["_id"]: 1, paragraphs[i + 1]["_id"]: 1}
            removed.add(paragraphs[i]["_id"])
    out.mkdir(parents=True, exist_ok=True)
    corpus = out / "articles.jsonl"
    with corpus.open("w", encoding="utf-8", newline="\n") as handle:
        for title in sorted(titles):
            for doc in articles[title]:
                if doc["_id"] not in removed:
                    handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return queries, kept, corpus


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(shared: Path, out: Path, parts: tuple[str, ...] = PARTS) -> dict:
    """Write the named parts under `out`; return the manifest (query ids and each file's sha256)."""
    manifest: dict = {"parts": {}}
    if "knowledge-context" in parts:
        queries, qrels = knowledge_part(REPO)
        write_part(out / "knowledge-context", REPO / "corpora" / "knowledge" / "corpus.jsonl", queries, qrels)
    if "scifact-context" in parts:
        queries, qrels = scifact_part(shared)
        write_part(out / "scifact-context", shared / "scifact" / "corpus.jsonl", queries, qrels)
    if "squad-context" in parts:
        staging = out / ".squad-articles"
        queries, qrels, corpus = squad_part(shared, staging)
        write_part(out / "squad-context", corpus, queries, qrels)
        shutil.rmtree(staging)
    if "squad-neighbours" in parts:
        staging = out / ".squad-neighbours"
        queries, qrels, corpus = squad_neighbours_part(shared, staging)
        write_part(out / "squad-neighbours", corpus, queries, qrels)
        shutil.rmtree(staging)
    for part in parts:
        folder = out / part
        ids = [q["_id"] for q in read_jsonl(folder / "queries.jsonl")]
        words = sorted(len(q["text"].split()) for q in read_jsonl(folder / "queries.jsonl"))
        files = {p.relative_to(folder).as_posix(): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}
        manifest["parts"][part] = {
            "queries": len(ids),
            "words": {"min": words[0], "median": words[len(words) // 2], "max": words[-1]},
            "sha256": files,
            "query_ids": ids,
        }
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=HERE / "build")
    parser.add_argument("--write-manifest", action="store_true", help="also rewrite manifest.json and knowledge-context/")
    args = parser.parse_args(argv)
    manifest = build(args.shared, args.out)
    if args.write_manifest:
        (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        kept = HERE / "knowledge-context"
        (kept / "qrels").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.out / "knowledge-context" / "queries.jsonl", kept / "queries.jsonl")
        shutil.copyfile(args.out / "knowledge-context" / "qrels" / "dev.tsv", kept / "qrels" / "dev.tsv")
    for part, info in manifest["parts"].items():
        print(f"{part}: {info['queries']} queries, words {info['words']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
