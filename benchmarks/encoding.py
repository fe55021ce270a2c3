"""Corpus encoding for the dense stage: documents per second and retrieval quality per weight precision.

Encodes the whole corpus longest first (as the dense stage does on a first start) with the
bi-encoder in fp32 (what ships), with its weights in fp16, and with dynamic int8 linear layers, then
runs dense-only retrieval for the judged queries (each encoded by the same variant) and reports
nDCG@10 and recall@100 (ranx) and the lowest cosine between a document's embedding and its fp32 one.

    python -m benchmarks.encoding --dataset ../shared/datasets/scifact --split train
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from collections.abc import Sequence

import numpy as np

from benchmarks.common import load, machine, machine_line, table
from reranker.dense import document_text, encode_longest_first
from reranker.evaluation.metrics import evaluate_run
from reranker.models import DEFAULT_BI_ENCODER, load_bi_encoder

VARIANTS = ("fp32", "fp16", "int8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.encoding", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="BEIR folder with queries and qrels")
    parser.add_argument("--split", default=None, help="qrels split to evaluate (default: test, else the first)")
    parser.add_argument("--model", default=DEFAULT_BI_ENCODER, help="bi-encoder (hub id or local directory)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return parser


def variant(model, name: str):
    """The model itself (fp32), a copy with fp16 weights, or a copy with dynamically quantised int8 linears."""
    import torch

    if name == "fp32":
        return model
    if name == "fp16":
        return copy.deepcopy(model).half()
    with warnings.catch_warnings():  # torch marks its eager quantisation API as deprecated
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def dense_run(model, embeddings: np.ndarray, ids: list[str], queries: dict[str, str], k: int = 100) -> dict:
    import faiss

    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
    qids = list(queries)
    vectors = model.encode([queries[q] for q in qids], normalize_embeddings=True, convert_to_numpy=True)
    scores, found = index.search(np.asarray(vectors, dtype=np.float32), min(k, len(ids)))
    return {q: {ids[i]: float(s) for s, i in zip(scores[n], found[n], strict=True) if i >= 0} for n, q in enumerate(qids)}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    dataset = load(args.dataset)
    split = args.split or ("test" if "test" in dataset.qrels else next(iter(sorted(dataset.qrels)), None))
    if split not in dataset.qrels:
        raise SystemExit(f"{args.dataset} has no qrels split {split!r} (it has: {', '.join(sorted(dataset.qrels)) or 'none'})")
    qrels = dataset.qrels[split]
    queries = {q: dataset.queries[q] for q in qrels if q in dataset.queries}
    loaded, _ = load_bi_encoder(args.model, device="cpu")
    texts = [document_text(d.title, d.text) for d in dataset.corpus.documents]
    ids = [d.id for d in dataset.corpus.documents]
    rows, reference = [], None
    for name in dict.fromkeys(["fp32", *args.variants]):  # fp32 first: the reference for the cosines
        model = variant(loaded.model, name)
        model.encode(texts[:8], batch_size=8)  # first-call setup is not encoding
        start = time.perf_counter()
        embeddings = encode_longest_first(model, texts, args.batch_size)
        seconds = time.perf_counter() - start
        reference = embeddings if reference is None else reference
        metrics = evaluate_run(qrels, dense_run(model, embeddings, ids, queries), ("ndcg@10", "recall@100"))
        if name in args.variants:
            rows.append(
                {
                    "variant": name,
                    "docs_per_s": len(texts) / seconds,
                    "seconds": seconds,
                    "ndcg@10": metrics["ndcg@10"],
                    "recall@100": metrics["recall@100"],
                    "min_cosine_to_fp32": float((embeddings * reference).sum(axis=1).min()),
                }
            )
    info = machine()
    result = {"dataset": dataset.path, "split": split, "queries": len(queries), "documents": len(texts), "model": args.model}
    result |= {"rows": rows, "machine": info}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(machine_line(info))
    print(f"dataset {dataset.path}: {len(texts)} documents, {len(queries)} judged {split} queries; model {args.model}")
    headers = ["weights", "docs/s", "encoding s", "nDCG@10", "recall@100", "min cosine to fp32"]
    cells = [
        [r["variant"], r["docs_per_s"], r["seconds"], *(f"{r[k]:.4f}" for k in ("ndcg@10", "recall@100", "min_cosine_to_fp32"))]
        for r in rows
    ]
    print(table(headers, cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
