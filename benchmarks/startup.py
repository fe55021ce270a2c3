"""First and second start: imports, BM25 index, corpus encoding or cache loads, first query, peak memory.

Each start is a fresh Python process (as a user would start the CLI or the app), timed from the
parent. The first start uses an empty cache folder (a temporary one unless --cache-root is given),
so it encodes the corpus, builds the BM25 index and rebuilds the offline model; later starts find
all three there. With --app, the last start is `python app.py` with the dataset as its start-up
corpus: timed until the page is served, until the warm-up has indexed the corpus and loaded the
cross-encoder, and until a first query through the app's API has its answer.

    python -m benchmarks.startup --dataset ../shared/datasets/scifact --app
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import machine, machine_line, peak_rss_mb, table

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("python + imports", "dataset", "bm25 index", "dense index", "cross-encoder load", "first query")
APP_PHASES = ("page served", "corpus indexed + model loaded", "first query answered")
APP_TIMEOUT_S = 900


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="BEIR folder or document folder")
    parser.add_argument("--model", default="auto", help="cross-encoder (default: the pipeline's offline default)")
    parser.add_argument("--cache-root", default=None, help="cache folder, as $RERANK_LENS_CACHE (default: a new temporary one)")
    parser.add_argument("--second-only", action="store_true", help="skip the first start (the cache is already filled)")
    parser.add_argument("--app", action="store_true", help="also time a start of `python app.py` on the dataset")
    parser.add_argument("--depth", type=int, default=10, help="rerank depth of the first query (default 10)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    return parser


def child(args: argparse.Namespace) -> int:
    """One start, in this process: print its phases as JSON (times since the epoch, for the parent)."""
    marks = [time.perf_counter()]
    started = time.time()
    from benchmarks.common import cross_encoder_spec, load
    from reranker.pipeline import Pipeline, PipelineConfig

    marks.append(time.perf_counter())
    dataset = load(args.dataset)
    marks.append(time.perf_counter())
    spec, _ = cross_encoder_spec(args.model)
    pipeline = Pipeline(dataset.corpus, PipelineConfig(cross_encoder=spec))
    startup = {t.stage: t for t in pipeline.startup}
    marks.append(time.perf_counter())
    reranker = pipeline.reranker(spec)
    marks.append(time.perf_counter())
    query = next(iter(dataset.queries.values()), None) or dataset.corpus.documents[0].text[:80]
    pipeline.search(query, rerank_depth=args.depth)
    marks.append(time.perf_counter())
    ms = [(b - a) * 1000 for a, b in itertools.pairwise(marks)]
    phases = {
        "imports": ms[0],
        "dataset": ms[1],
        "bm25 index": startup["bm25 index"].load_ms,
        "dense index": startup["dense index"].load_ms,
        "cross-encoder load": ms[3],
        "first query": ms[4],
    }
    details = {stage: timing.detail for stage, timing in startup.items()}
    report = {"started_epoch": started, "phases": phases, "details": details, "precision": reranker.precision}
    print(json.dumps({**report, "peak_rss_mb": peak_rss_mb()}))
    return 0


def run_child(args: argparse.Namespace, env: dict[str, str]) -> dict:
    command = [sys.executable, "-m", "benchmarks.startup", "--child", "--dataset", args.dataset, "--model", args.model]
    command += ["--depth", str(args.depth)]
    launched = time.time()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    wall = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise SystemExit(f"the start failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    phases = report["phases"]
    # Interpreter start and every module import before the first phase, counted from the launch.
    phases["python + imports"] = (report.pop("started_epoch") - launched) * 1000 + phases.pop("imports")
    report["wall_ms"] = wall
    return report


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _first_query(url: str, key: str, query: str, depth: int) -> None:
    from gradio_client import Client

    from reranker.ui.settings import SETTING_FIELDS, Settings

    values = Settings(rerank_depth=depth)
    Client(url, verbose=False).predict(key, query, *[getattr(values, f) for f in SETTING_FIELDS], api_name="/search")


def app_start(args: argparse.Namespace, env: dict[str, str], log_path: Path) -> dict:
    """`python app.py` on the dataset: seconds until the page, the warm-up and a first query are done."""
    # The client side's own imports (gradio) happen before the launch, so they are not timed as the app's.
    import gradio_client  # noqa: F401

    import reranker.ui.settings  # noqa: F401
    from benchmarks.common import load

    dataset_dir = Path(args.dataset).resolve()
    dataset = load(args.dataset)
    query = next(iter(dataset.queries.values()), None) or dataset.corpus.documents[0].text[:80]
    port = _free_port()
    env = {**env, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    env |= {"RERANK_LENS_DATA": str(dataset_dir.parent), "RERANK_LENS_CORPUS": dataset_dir.name}
    url = f"http://127.0.0.1:{port}/"
    marks: dict[str, float] = {}
    with open(log_path, "w") as log:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while len(marks) < 2:
                if process.poll() is not None or time.perf_counter() - start > APP_TIMEOUT_S:
                    raise SystemExit(f"the app did not come up; its log:\n{log_path.read_text()[-2000:]}")
                if "page served" not in marks:
                    try:
                        with urllib.request.urlopen(url, timeout=2):
                            marks["page served"] = (time.perf_counter() - start) * 1000
                    except OSError:
                        pass
                if "corpus indexed + model loaded" not in marks and "warm: data:" in log_path.read_text():
                    marks["corpus indexed + model loaded"] = (time.perf_counter() - start) * 1000
                time.sleep(0.05)
            _first_query(url, f"data:{dataset_dir}", query, args.depth)
            marks["first query answered"] = (time.perf_counter() - start) * 1000
        finally:
            process.terminate()
            process.wait(timeout=60)
    if "warm-up of" in log_path.read_text():
        raise SystemExit(f"the app's warm-up failed; its log:\n{log_path.read_text()[-2000:]}")
    return {phase: marks[phase] for phase in APP_PHASES}  # a small corpus can be warm before the page is up


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        return child(args)
    cache_root = args.cache_root or tempfile.mkdtemp(prefix="rerank-lens-bench-")
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "RERANK_LENS_CACHE": cache_root}
    starts = {}
    if not args.second_only:
        starts["first"] = run_child(args, env)
    starts["second"] = run_child(args, env)
    app = app_start(args, env, Path(cache_root) / "app.log") if args.app else None
    info = machine()
    output = {"dataset": args.dataset, "cache_root": cache_root, "depth": args.depth, "starts": starts, "app": app}
    output["machine"] = info
    if args.json:
        print(json.dumps(output, indent=2))
        return 0
    print(machine_line(info))
    print(f"dataset {args.dataset}; cache {cache_root}; first query reranks the top {args.depth}")
    headers = ["start", *(f"{p} ms" for p in PHASES), "process wall ms", "peak RSS MiB"]
    rows = [[name, *(s["phases"][p] for p in PHASES), s["wall_ms"], s["peak_rss_mb"]] for name, s in starts.items()]
    print(table(headers, rows))
    for name, s in starts.items():
        print(f"{name} start: bm25 {s['details']['bm25 index']}; dense {s['details']['dense index']}")
    if app:
        print("\n`python app.py` with the dataset as start-up corpus, caches filled (ms since launch):")
        print(table(list(APP_PHASES), [[app[p] for p in APP_PHASES]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
