"""First and second start: model loads, BM25 index, corpus encoding or embedding-cache load, peak memory.

Each start is a fresh Python process (as a user would start the app or CLI), timed from the
parent; the child reports its own phases and peak resident memory. The first start uses an empty
embedding cache (a temporary folder unless --cache-dir is given), the second the one it wrote.

    python -m benchmarks.startup --dataset ../shared/datasets/scifact
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from benchmarks.common import machine, machine_line, peak_rss_mb, table

PHASES = ("imports", "dataset", "bm25 index", "dense index", "cross-encoder load", "first query")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="BEIR folder or document folder")
    parser.add_argument("--model", default="auto", help="cross-encoder (default: the pipeline's offline default)")
    parser.add_argument("--cache-dir", default=None, help="embedding cache folder (default: a new temporary one)")
    parser.add_argument("--second-only", action="store_true", help="skip the first start (the cache is already filled)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    return parser


def child(args: argparse.Namespace) -> int:
    """One start, in this process: print its phases as JSON."""
    marks = [time.perf_counter()]
    from benchmarks.common import cross_encoder_spec, load
    from reranker.pipeline import Pipeline, PipelineConfig

    marks.append(time.perf_counter())
    dataset = load(args.dataset)
    marks.append(time.perf_counter())
    spec, _ = cross_encoder_spec(args.model)
    pipeline = Pipeline(dataset.corpus, PipelineConfig(cross_encoder=spec), cache_dir=args.cache_dir)
    startup = {t.stage: t.load_ms for t in pipeline.startup}
    marks.append(time.perf_counter())
    reranker = pipeline.reranker(spec)
    marks.append(time.perf_counter())
    query = next(iter(dataset.queries.values()), None) or dataset.corpus.documents[0].text[:80]
    pipeline.search(query, rerank_depth=10)
    marks.append(time.perf_counter())
    ms = [(b - a) * 1000 for a, b in itertools.pairwise(marks)]
    phases = {
        "imports": ms[0],
        "dataset": ms[1],
        "bm25 index": startup.get("bm25 index", 0.0),
        "dense index": startup.get("dense index", 0.0),
        "cross-encoder load": ms[3],
        "first query": ms[4],
    }
    dense = next(t for t in pipeline.startup if t.stage == "dense index")
    print(json.dumps({"phases": phases, "dense": dense.detail, "precision": reranker.precision, "peak_rss_mb": peak_rss_mb()}))
    return 0


def run_child(args: argparse.Namespace, cache_dir: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.startup", "--child", "--dataset", args.dataset, "--model", args.model]
    command += ["--cache-dir", cache_dir]
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise SystemExit(f"the start failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["wall_ms"] = wall
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        return child(args)
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="rerank-lens-bench-")
    starts = {}
    if not args.second_only:
        starts["first"] = run_child(args, cache_dir)
    starts["second"] = run_child(args, cache_dir)
    info = machine()
    output = {"dataset": args.dataset, "cache_dir": cache_dir, "starts": starts, "machine": info}
    if args.json:
        print(json.dumps(output, indent=2))
        return 0
    print(machine_line(info))
    print(f"dataset {args.dataset}; embedding cache {cache_dir}")
    headers = ["start", *(f"{p} ms" for p in PHASES), "process wall ms", "peak RSS MiB"]
    rows = [[name, *(s["phases"][p] for p in PHASES), s["wall_ms"], s["peak_rss_mb"]] for name, s in starts.items()]
    print(table(headers, rows))
    for name, s in starts.items():
        print(f"{name} start dense stage: {s['dense']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
