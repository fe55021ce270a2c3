"""How long grading takes with the SQLite grade log when several judges write at once.

N writers (threads of one process, or processes) each record G grades, one transaction per grade as the
app's clicks do, into one corpus's log in a temporary folder; then the merged view is read R times.
Prints p50/p95 of one grade's write (lock wait included), grades per second over the whole run, and
p50/p95 of one `load()` of the finished log.

    python -m benchmarks.judgments [--writers 8] [--grades 50] [--processes] [--reads 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import machine, machine_line, percentile
from reranker.judgments import JudgmentStore


def _write(folder: str, writer: int, grades: int, out) -> None:
    store = JudgmentStore(folder)
    times = []
    for i in range(grades):
        start = time.perf_counter()
        store.record([(f"q{i % 10}", f"d{i}", (i + writer) % 4)], judge=f"judge{writer}")
        times.append(time.perf_counter() - start)
    out.put(times) if hasattr(out, "put") else out.extend(times)


def run(writers: int, grades: int, processes: bool, reads: int) -> dict:
    folder = str(Path(tempfile.mkdtemp(prefix="rerank-lens-bench-judgments-")) / "corpus")
    start = time.perf_counter()
    times: list[float] = []
    if processes:
        queue = multiprocessing.get_context("fork").Queue()
        workers = [multiprocessing.get_context("fork").Process(target=_write, args=(folder, w, grades, queue))
                   for w in range(writers)]
        for worker in workers:
            worker.start()
        for _ in workers:
            times += queue.get()
        for worker in workers:
            worker.join()
    else:
        threads = [threading.Thread(target=_write, args=(folder, w, grades, times)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elapsed = time.perf_counter() - start
    store = JudgmentStore(folder)
    loads = []
    for _ in range(reads):
        t = time.perf_counter()
        overlay = store.load()
        loads.append(time.perf_counter() - t)
    assert sum(len(by) for docs in overlay.grades.values() for by in docs.values()) == writers * grades  # nothing lost
    return {
        "writers": writers, "grades_each": grades, "mode": "processes" if processes else "threads",
        "write_p50_ms": 1000 * statistics.median(times), "write_p95_ms": 1000 * percentile(times, 95),
        "grades_per_s": writers * grades / elapsed, "load_p50_ms": 1000 * statistics.median(loads),
        "load_p95_ms": 1000 * percentile(loads, 95), "events": writers * grades, "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--grades", type=int, default=50, help="grades per writer, one transaction each")
    parser.add_argument("--processes", action="store_true", help="writers are processes (default: threads)")
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.writers, args.grades, args.processes, args.reads)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['writers']} writers ({result['mode']}) x {result['grades_each']} grades: "
          f"write p50 {result['write_p50_ms']:.1f} ms, p95 {result['write_p95_ms']:.1f} ms, "
          f"{result['grades_per_s']:.0f} grades/s; load() of {result['events']} events: "
          f"p50 {result['load_p50_ms']:.1f} ms, p95 {result['load_p95_ms']:.1f} ms")
    print(machine_line(result["machine"]))


if __name__ == "__main__":
    main()
