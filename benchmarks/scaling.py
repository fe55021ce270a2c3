"""Cross-encoder pairs per second against the number of Ray workers, next to the local engine, on this machine.

The pairs are one round of `rerank-run`'s jobs (reranker.engines.jobs): each sampled query's BM25 top
`--depth` documents cut into the reranker's windows, one job per query. Every configuration scores the same
jobs with the same function (`CrossEncoderReranker.model_scores`):

- local, N threads: in this process, torch on N threads (what `--engine local` does on a free machine);
- ray, W workers: `RayEngine.score_jobs` on a local Ray cluster started once, W actors of `--worker-cpus`
  CPUs and torch threads each.

A Ray pass starts its actors and loads the model in each every time (Ray Data keeps no actor between
datasets), so before each Ray measurement a pass of one single-pair job per worker measures that:
`startup` is its wall time, and `pairs/s steady` is pairs / (wall - startup) where the startup is the
smaller (on a busy machine either can be inflated by other work). Every configuration's scores are checked
against the first's (`identical`: the same float64 for every pair). Configurations run in turn,
`--repeats` times, and the fastest pass counts: on a shared machine the slower ones measure the other jobs.

    python -m benchmarks.scaling --dataset corpora/knowledge --queries 12 --depth 10 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import cross_encoder_spec, load, machine, machine_line, sample_queries, table
from reranker.bm25 import BM25Retriever
from reranker.engines.jobs import Deferral, PairJob, ScoresPending, deferring
from reranker.pipeline import PipelineConfig, RerankStages
from reranker.speed import configure_threads, physical_cores, reproducible_blas


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="corpora/knowledge", help="BEIR folder (queries are sampled from it)")
    parser.add_argument("--queries", type=int, default=12, help="queries sampled (judged first)")
    parser.add_argument("--depth", type=int, default=10, help="BM25 candidates reranked per query")
    parser.add_argument("--model", default="auto", help="cross-encoder (default: the pipeline's offline default)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts to measure")
    parser.add_argument("--worker-cpus", type=int, default=1, help="CPUs (and torch threads) per Ray worker")
    parser.add_argument("--threads", type=int, nargs="+", default=None, help="local thread counts (default: 1 and all cores)")
    parser.add_argument("--repeats", type=int, default=1, help="passes per configuration; the fastest counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return parser


def plan_jobs(stages: RerankStages, queries: dict[str, str], candidates: dict[str, list]) -> list[PairJob]:
    """The jobs of the first round of `rerank-run` over these candidates: one per query, nothing scored."""
    deferral = Deferral()
    for qid, text in queries.items():
        with deferring(deferral):
            try:
                stages.rerank(text, candidates[qid])
            except ScoresPending:
                pass
    return [job for job, _, _ in deferral.jobs]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reproducible_blas()  # as rerank-run does: scores then do not depend on the thread count
    import numpy as np

    from reranker.engines.ray import RayEngine, import_ray

    spec, note = cross_encoder_spec(args.model)
    dataset = load(args.dataset)
    queries, _ = sample_queries(dataset, args.queries, args.seed)
    bm25 = BM25Retriever(dataset.corpus)
    candidates = {qid: bm25.search(text, args.depth) for qid, text in queries.items()}
    stages = RerankStages(dataset.corpus, PipelineConfig(cross_encoder=spec, rerank_depth=args.depth, precision="fp32"))
    jobs = plan_jobs(stages, queries, candidates)
    pairs = sum(len(job) for job in jobs)
    scorer = stages.reranker(spec)

    def tiny(count: int) -> list[PairJob]:
        """`count` jobs of one pair each: a pass that starts `count` actors and does almost nothing else."""
        return [PairJob(job.spec, job.pairs[:1], job.pair_ids[:1] if job.pair_ids else None) for job in jobs[:count]]

    def local(threads: int) -> list:
        configure_threads(threads)
        return [scorer.model_scores(job.pairs, job.pair_ids, precision="fp32") for job in jobs]

    ray = import_ray()
    started = time.perf_counter()
    ray.init(num_cpus=physical_cores(), include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    cluster_s = time.perf_counter() - started
    engines = {w: RayEngine(workers=w, worker_cpus=args.worker_cpus) for w in args.workers}
    threads = args.threads or sorted({1, physical_cores()})
    configs = [(f"local, {t} thread{'s' * (t > 1)}", "local", t) for t in threads]
    configs += [(f"ray, {w} worker{'s' * (w > 1)} x {args.worker_cpus} CPU", "ray", w) for w in args.workers]

    local(threads[-1])  # warm up: first calls tokenise and allocate
    best: dict[str, dict] = {}
    reference = None
    try:
        for _ in range(args.repeats):
            for name, kind, n in configs:
                startup = None
                if kind == "ray":
                    t0 = time.perf_counter()
                    engines[n].score_jobs(tiny(n))
                    startup = time.perf_counter() - t0
                t0 = time.perf_counter()
                scores = local(n) if kind == "local" else engines[n].score_jobs(jobs)
                wall = time.perf_counter() - t0
                flat = np.concatenate([np.asarray(s, dtype=np.float64) for s in scores])
                reference = flat if reference is None else reference
                row = {
                    "configuration": name,
                    "engine": kind,
                    "workers": n if kind == "ray" else None,
                    "threads": n if kind == "local" else args.worker_cpus,
                    "pairs": pairs,
                    "wall_s": round(wall, 2),
                    "startup_s": round(startup, 2) if startup is not None else None,
                    "pairs_per_s": round(pairs / wall, 2),
                    "steady_pairs_per_s": round(pairs / (wall - startup), 2) if startup and startup < wall else None,
                    "identical": bool(np.array_equal(flat, reference)),
                    "load_average": round(os.getloadavg()[0], 2),
                }
                if name not in best or row["wall_s"] < best[name]["wall_s"]:
                    best[name] = row
    finally:
        for engine in engines.values():
            engine.close()
        ray.shutdown()

    rows = [best[name] for name, _, _ in configs]
    info = machine()
    info["ray"] = ray.__version__
    result = {
        "machine": info,
        "dataset": dataset.path,
        "model": spec,
        "note": note,
        "queries": len(queries),
        "depth": args.depth,
        "pairs": pairs,
        "jobs": len(jobs),
        "ray_cluster_start_s": round(cluster_s, 2),
        "repeats": args.repeats,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(machine_line(info) + f", ray {ray.__version__}")
    detail = f"{len(queries)} queries x BM25 top {args.depth}, fp32" + (f"; {note}" if note else "")
    print(f"{spec}: {pairs} pairs in {len(jobs)} jobs ({detail})")
    print(f"local Ray cluster started in {cluster_s:.1f} s (once, not counted below)")
    headers = ["configuration", "wall s", "startup s", "pairs/s", "pairs/s steady", "identical", "load (1 min)"]
    body = []
    for r in rows:
        steady = r["pairs_per_s"] if r["engine"] == "local" else r["steady_pairs_per_s"] or "n/a"
        startup = r["startup_s"] if r["startup_s"] is not None else "-"
        same = "yes" if r["identical"] else "NO"
        body.append([r["configuration"], r["wall_s"], startup, r["pairs_per_s"], steady, same, r["load_average"]])
    print(table(headers, body))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
