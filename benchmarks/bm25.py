"""BM25 backends compared: index build time, queries per second, and whether rankings are the same.

python -m benchmarks.bm25 --dataset ../shared/datasets/scifact --queries 200
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from benchmarks.common import load, machine, machine_line, sample_queries, table
from reranker.bm25 import BM25Retriever, Tokenizer

BACKENDS = ("bm25s", "rank_bm25")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bm25", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="BEIR folder or document folder")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=100, help="hits per query")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    dataset = load(args.dataset)
    queries, _ = sample_queries(dataset, args.queries, args.seed)
    texts = list(queries.values())
    k = min(args.k, len(dataset.corpus))
    results: dict[str, dict] = {}
    rankings: dict[str, list[list[str]]] = {}
    for backend in BACKENDS:
        start = time.perf_counter()
        retriever = BM25Retriever(dataset.corpus, backend=backend, tokenizer=Tokenizer(stemmer="english"))
        build_ms = (time.perf_counter() - start) * 1000
        retriever.search(texts[0], k)
        start = time.perf_counter()
        rankings[backend] = [retriever.search(text, k).doc_ids() for text in texts]
        seconds = time.perf_counter() - start
        results[backend] = {"index_ms": build_ms, "queries_per_s": len(texts) / seconds}
    reference = rankings[BACKENDS[0]]
    for backend in BACKENDS:
        same = sum(a[:10] == b[:10] for a, b in zip(reference, rankings[backend], strict=True))
        results[backend]["same_top10_order"] = same / len(texts)
    info = machine()
    output = {"dataset": dataset.path, "queries": len(texts), "k": k, "backends": results, "machine": info}
    if args.json:
        print(json.dumps(output, indent=2))
        return 0
    print(machine_line(info))
    print(f"dataset {dataset.path}: {len(dataset.corpus)} documents, {len(texts)} queries, top {k}")
    rows = [[b, r["index_ms"], r["queries_per_s"], r["same_top10_order"]] for b, r in results.items()]
    print(table(["backend", "index build ms", "queries/s", f"same top-10 order as {BACKENDS[0]}"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
