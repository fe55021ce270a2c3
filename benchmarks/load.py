"""Many visitors at once: N concurrent `gradio_client` sessions against one app server, for a bounded time.

Each session is its own browser-like session on the server, so it gets its own workspace: it uploads a
small file of documents first, then runs a query mix (the bundled corpus's queries, and every fourth query
on its own upload) with the page's default settings, one request at a time, until the time is up. One
search before the clock starts warms the server (the corpus indexed, the cross-encoder loaded).
Reported: requests answered, errors, requests the server's full queue rejected ("busy, try again"), and
p50/p95 latency of the answered ones, with the machine.

Without --url it starts `python -m reranker app` on a free loopback port (its uploads, judgments and caches
in a temporary folder) and stops it afterwards; --url takes a server already running on a loopback address.

    python -m benchmarks.load --sessions 32 --seconds 60 --json
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
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from benchmarks.common import machine, machine_line, percentile, table

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
CORPUS = "bundled:knowledge"
START_TIMEOUT_S = 600
REQUEST_TIMEOUT_S = 300


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=32, help="concurrent client sessions (default: 32)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long sessions send requests (default: 60)")
    parser.add_argument("--url", default=None, help="a running app on a loopback address (default: start one)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


@dataclass
class Tally:
    """What every session saw, merged under a lock."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    rejected: int = 0
    uploads: int = 0
    error_samples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, exc: BaseException) -> None:
        with self.lock:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{type(exc).__name__}: {str(exc)[:200]}")


def check_loopback(url: str) -> str:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK and f"[{host}]" not in LOOPBACK:
        raise SystemExit(f"--url must be a loopback address (127.0.0.1, localhost, ::1), not {host!r}")
    return url if url.endswith("/") else url + "/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    """`python -m reranker app` on a free loopback port, its state in `folder`; returns once the page is served."""
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "RERANK_LENS_UPLOADS": str(folder / "uploads"),
        "RERANK_LENS_JUDGMENTS": str(folder / "judgments"),
        "RERANK_LENS_CORPUS": "knowledge",
    }
    log = open(folder / "server.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "reranker", "app", "--host", "127.0.0.1", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server stopped; its log: {folder / 'server.log'}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return process, url
        except OSError:
            time.sleep(1)
    process.terminate()
    raise SystemExit(f"the server did not answer within {START_TIMEOUT_S} s")


def queries() -> list[str]:
    path = ROOT / "corpora" / "knowledge" / "queries.jsonl"
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def connect(url: str) -> Any:
    """A client session of its own (so its own workspace on the server), patient with a busy server."""
    from gradio_client import Client

    return Client(url, verbose=False, httpx_kwargs={"timeout": REQUEST_TIMEOUT_S})


def session(client: Any, number: int, deadline: float, mix: list[str], folder: Path, tally: Tally) -> None:
    """One visitor: an upload into its workspace, then queries until the deadline."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError

    notes = folder / f"session-{number}.csv"
    notes.write_text(
        "id,title,text\n"
        f"s{number}a,Session {number} notes,Visitor {number} keeps notes about tides, volcanoes and violins.\n"
        f"s{number}b,Session {number} plans,Visitor {number} plans a trip to see emperor penguins.\n"
    )
    own = None
    try:
        own = client.predict(handle_file(str(notes)), CORPUS, api_name="/upload")["value"]
        with tally.lock:
            tally.uploads += 1
    except QueueError:
        with tally.lock:
            tally.rejected += 1
    except (AppError, Exception) as exc:
        tally.error(exc)
    for i in itertools.count():
        if time.time() >= deadline:
            return
        corpus = own if own and i % 4 == 3 else CORPUS
        query = mix[(number * 7 + i) % len(mix)]
        started = time.perf_counter()
        try:
            job = client.submit(corpus, query, api_name="/search")
            job.result(timeout=REQUEST_TIMEOUT_S)
        except QueueError:
            with tally.lock:
                tally.rejected += 1
            time.sleep(1.0)  # as a person told "busy, try again" would wait a moment
            continue
        except Exception as exc:
            tally.error(exc)
            continue
        with tally.lock:
            tally.latencies_ms.append((time.perf_counter() - started) * 1000.0)


def warm(url: str, query: str) -> None:
    """One search before the clock starts, so the figures are those of a warm server (corpus indexed, model loaded)."""
    connect(url).predict(CORPUS, query, api_name="/search")


def run(sessions: int, seconds: float, url: str | None) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="rerank-lens-load-"))
    server = None
    if url is None:
        server, url = start_server(folder)
    else:
        url = check_loopback(url)
    try:
        mix = queries()
        warm(url, mix[0])
        clients = [connect(url) for _ in range(sessions)]  # connected before the clock starts, one by one
        tally = Tally()
        started = time.time()
        deadline = started + seconds
        with ThreadPoolExecutor(max_workers=sessions) as pool:
            for number, client in enumerate(clients):
                pool.submit(session, client, number, deadline, mix, folder, tally)
        elapsed = time.time() - started
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
    latencies = sorted(tally.latencies_ms)
    return {
        "sessions": sessions,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "uploads": tally.uploads,
        "errors": tally.errors,
        "rejected": tally.rejected,
        "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "p95_ms": round(percentile(latencies, 95), 1) if latencies else None,
        "throughput_per_s": round(len(latencies) / elapsed, 2) if elapsed else None,
        "server": "started here" if server is not None else url,
        "error_samples": tally.error_samples,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.sessions < 1 or args.seconds <= 0:
        raise SystemExit("--sessions must be at least 1 and --seconds above 0")
    result = run(args.sessions, args.seconds, args.url)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(table(["sessions", "seconds", "requests", "errors", "rejected", "p50 ms", "p95 ms", "req/s"],
                [[result[k] for k in ("sessions", "seconds", "requests", "errors", "rejected", "p50_ms", "p95_ms",
                                      "throughput_per_s")]]))
    print(machine_line(result["machine"]))  # type: ignore[arg-type]
    for sample in result["error_samples"]:  # type: ignore[union-attr]
        print("error:", sample)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
