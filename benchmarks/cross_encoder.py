"""Cross-encoder throughput and ranking agreement: this project's reranker vs plain sentence-transformers.

Both score the same (query, window) pairs: the windows the project's reranker makes from the
first stage's top candidates of sampled queries. The baseline is `CrossEncoder.predict` in fp32,
batch 32, on its own model instance; the project path is `CrossEncoderReranker.score_documents`
(what the app and CLI run) with an empty score cache, so every pair is scored fresh. The two run
interleaved, query by query, so load on a shared machine hits both alike.

    python -m benchmarks.cross_encoder --dataset ../shared/datasets/scifact --queries 20 --depth 20

Both run on `--device` (auto: a CUDA GPU when torch sees one). `--save-candidates FILE` writes the
sampled queries, their judgments and first-stage candidates (with the documents' text); `--candidates
FILE` scores exactly those on another machine, which then needs no first stage (BM25, FAISS, bi-encoder).
`--also-models M` scores the same pairs with another model of the same tokenizer (a faster sibling), so its
speed-up over the main model is measured on the same pairs, interleaved, in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import cross_encoder_spec, load, machine, machine_line, ndcg_at_k, sample_queries, table
from reranker.chunking import aggregate
from reranker.cross_encoder import CrossEncoderReranker, ScoreCache
from reranker.pipeline import Pipeline, PipelineConfig
from reranker.speed import PRECISIONS, select_device


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cross_encoder", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="BEIR folder (queries are sampled from it) or a document folder")
    source.add_argument("--candidates", help="a file written by --save-candidates: score exactly those")
    parser.add_argument("--save-candidates", help="write the sampled queries, judgments and candidates to this JSON file")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (both paths run there)")
    parser.add_argument("--queries", type=int, default=20, help="queries sampled (judged first); --candidates: the first N")
    parser.add_argument("--depth", type=int, default=20, help="first-stage candidates reranked per query")
    parser.add_argument("--model", default="auto", help="cross-encoder (default: the pipeline's offline default)")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per pair (the model reads at most this)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["auto"],
        choices=PRECISIONS,
        help="project precisions to measure (the first is reported as 'project')",
    )
    parser.add_argument(
        "--also-models",
        nargs="+",
        default=[],
        metavar="MODEL",
        help="other cross-encoders scored on the same pairs by the project path (first --precision), e.g. a faster sibling",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch
    from sentence_transformers import CrossEncoder

    default_threads = torch.get_num_threads()  # what plain sentence-transformers runs with
    spec, note = cross_encoder_spec(args.model)
    source, corpus, queries, qrels, candidates = queries_and_candidates(args)
    if args.save_candidates:
        save_candidates(args.save_candidates, source, corpus, queries, qrels, candidates, args.depth)
    device = select_device(args.device).device

    # The pairs: windows exactly as the project's reranker cuts them (a separate instance, so the
    # measured ones start with nothing tokenised).
    planner = CrossEncoderReranker(spec, max_length=args.max_length, precision="fp32", cache=None, device=device)
    docs = {qid: [corpus[d] for d in candidates[qid][: args.depth]] for qid in queries}
    plans = {qid: planner._plan(queries[qid], docs[qid]) for qid in queries}
    path = planner.loaded.resolved.path
    baseline = CrossEncoder(path, max_length=planner.max_length, device=device)
    # Same weights, including a head the checkpoint may lack (then randomly initialised per instance).
    baseline.model.load_state_dict(planner.model.model.state_dict())
    variants = {
        p: CrossEncoderReranker(
            spec, max_length=args.max_length, precision=p, batch_size=args.batch_size, cache=ScoreCache(), device=device
        )
        for p in dict.fromkeys(args.precision)
    }
    # Another model on the same windows: the same tokenizer and max length are required for "the same pairs".
    for other in args.also_models:
        extra = CrossEncoderReranker(
            cross_encoder_spec(other)[0],
            max_length=args.max_length,
            precision=args.precision[0],
            batch_size=args.batch_size,
            cache=ScoreCache(),
            device=device,
        )
        if extra.max_length != planner.max_length or extra.tokenizer.get_vocab() != planner.tokenizer.get_vocab():
            raise SystemExit(f"--also-models {other}: not the same tokenizer and max length, so not the same pairs")
        variants[f"model {other}"] = extra

    def run_baseline(pairs):
        torch.set_num_threads(default_threads)  # the project path sets its own threads per call
        identity = torch.nn.Identity()
        return baseline.predict(pairs, batch_size=32, activation_fn=identity, convert_to_numpy=True, show_progress_bar=False)

    warm = plans[next(iter(queries))][1][:4]
    run_baseline(warm)
    for reranker in variants.values():
        reranker.score_pairs(warm)
        reranker.cache.clear()

    wall = {"baseline": 0.0, **{p: 0.0 for p in variants}}
    cpu = dict.fromkeys(wall, 0.0)
    rankings: dict[str, dict[str, list[str]]] = {name: {} for name in wall}
    total_pairs = 0
    for i, qid in enumerate(queries):
        plan, pairs, *_ = plans[qid]  # _plan also returns its messages and the token ids of each pair
        total_pairs += len(pairs)
        order = ["baseline", *variants] if i % 2 == 0 else [*variants, "baseline"]
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            if name == "baseline":
                raw = list(map(float, run_baseline(pairs)))
                scores, cursor = {}, 0
                for doc, windows, _ in plan:
                    scores[doc.id] = aggregate(raw[cursor : cursor + len(windows)], planner.aggregation)[0]
                    cursor += len(windows)
            else:
                results, _, scored, _ = variants[name].score_documents(queries[qid], docs[qid])
                assert scored == len(pairs), "the project path must score every pair fresh"
                scores = {r.doc_id: r.raw for r in results}
            wall[name] += time.perf_counter() - start
            cpu[name] += time.process_time() - start_cpu
            fused_rank = {d: rank for rank, d in enumerate(candidates[qid], start=1)}
            rankings[name][qid] = sorted(scores, key=lambda d, s=scores: (-s[d], fused_rank[d]))

    def agreement(name: str) -> float:
        values = []
        for qid, base in rankings["baseline"].items():
            k = min(10, len(base))
            values.append(len(set(base[:k]) & set(rankings[name][qid][:k])) / k)
        return sum(values) / len(values)

    def ndcg(name: str) -> float | None:
        judged = [q for q in queries if q in qrels]
        if not judged:
            return None
        return sum(ndcg_at_k(rankings[name][q], qrels[q]) for q in judged) / len(judged)

    fused_ndcg = None
    if any(q in qrels for q in queries):
        judged = [q for q in queries if q in qrels]
        fused_ndcg = sum(ndcg_at_k(candidates[q][: args.depth], qrels[q]) for q in judged) / len(judged)
    info = machine()
    rows = []
    for name in wall:
        reranker = variants.get(name)
        label = "sentence-transformers predict, fp32"
        if reranker is not None:
            label = f"project CrossEncoderReranker, {name} -> {reranker.precision}"
            if name.startswith("model "):
                label = f"project CrossEncoderReranker, {name.removeprefix('model ')}, {reranker.precision}"
        rows.append(
            {
                "path": label,
                "pairs_per_s": total_pairs / wall[name],
                "cpu_ms_per_pair": 1000 * cpu[name] / total_pairs,
                "speedup": wall["baseline"] / wall[name],
                "top10_agreement": agreement(name),
                "ndcg@10": ndcg(name),
            }
        )
    main_variant = next(iter(variants))
    result = {
        "dataset": source,
        "device": device,
        "model": spec,
        "note": note,
        "queries": len(queries),
        "depth": args.depth,
        "pairs": total_pairs,
        "max_length": planner.max_length,
        "precision": variants[main_variant].precision,
        "precision_reason": variants[main_variant].precision_choice.reason,
        "baseline_pairs_per_s": round(rows[0]["pairs_per_s"], 2),
        "project_pairs_per_s": round(rows[1]["pairs_per_s"], 2),
        "speedup": round(rows[1]["speedup"], 3),
        "top10_agreement": round(rows[1]["top10_agreement"], 4),
        "baseline_ndcg@10": rows[0]["ndcg@10"],
        "project_ndcg@10": rows[1]["ndcg@10"],
        "first_stage_ndcg@10": fused_ndcg,
        "rows": rows,
        "machine": info,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(machine_line(info))
    print(
        f"dataset {source}: {len(queries)} queries x top {args.depth} first-stage candidates "
        f"= {total_pairs} pairs, max length {planner.max_length}, on {device}"
    )
    print(f"model {spec}" + (f"\nnote: {note}" if note else ""))
    print(f"precision auto resolves to: {variants[main_variant].precision_choice.reason}")
    headers = ["path", "pairs/s", "CPU ms/pair", "speedup", "top-10 agreement", "nDCG@10"]
    cells = [[r["path"], r["pairs_per_s"], r["cpu_ms_per_pair"], r["speedup"], r["top10_agreement"], r["ndcg@10"]] for r in rows]
    print(table(headers, [[("-" if c is None else c) for c in row] for row in cells]))
    if fused_ndcg is not None:
        print(f"first stage (RRF) nDCG@10 over the same candidates: {fused_ndcg:.3f}")
    return 0


def queries_and_candidates(args: argparse.Namespace):
    """(source, corpus, queries, qrels, fused candidates per query): the first `args.queries` of a
    `--candidates` file, else queries sampled from `--dataset` (judged first) with their fused lists."""
    if args.candidates:
        source, corpus, queries, qrels, candidates = load_candidates(args.candidates)
        return source, corpus, dict(list(queries.items())[: args.queries]), qrels, candidates
    dataset = load(args.dataset)
    queries, qrels = sample_queries(dataset, args.queries, args.seed)
    first_stage = Pipeline(dataset.corpus, PipelineConfig(cross_encoder=None))
    candidates = {qid: first_stage.search(text).stages["fused"].doc_ids() for qid, text in queries.items()}
    return dataset.path, dataset.corpus, queries, qrels, candidates


def save_candidates(path, source, corpus, queries, qrels, candidates, depth) -> None:
    kept = {qid: candidates[qid][:depth] for qid in queries}
    needed = dict.fromkeys(d for ids in kept.values() for d in ids)
    documents = {d: {"title": corpus[d].title, "text": corpus[d].text} for d in needed}
    payload = {"dataset": source, "queries": queries, "qrels": qrels, "candidates": kept, "documents": documents}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f)


def load_candidates(path):
    from reranker.corpus import build_corpus
    from reranker.types import Document

    with open(path, encoding="utf-8") as f:
        payload = json.load(f)
    corpus = build_corpus([Document(d, v["text"], v["title"]) for d, v in payload["documents"].items()])
    source = f"{payload['dataset']} (saved candidates {os.path.basename(path)})"
    return source, corpus, payload["queries"], payload["qrels"], payload["candidates"]


if __name__ == "__main__":
    raise SystemExit(main())
