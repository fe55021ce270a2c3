"""Wall time of a whole `tradeoffs` sweep, with its JSON summary and the machine (issue 23's goal: ≤ 10 minutes
on 2 cores for 2 models × 5 depths × 2 blends on corpora/knowledge test).

    python -m benchmarks.tradeoffs --dataset knowledge --split test \
        --models rerank-lens/minilm-l6-general rerank-lens/tiny-general --depths 0,10,20,30,50,100 --blends 0,0.5
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import time
from collections.abc import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import machine, machine_line
from reranker.cli import main as cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tradeoffs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="knowledge")
    parser.add_argument("--split", default="test")
    parser.add_argument("--models", nargs="+", default=["rerank-lens/minilm-l6-general", "rerank-lens/tiny-general"])
    parser.add_argument("--depths", default="0,10,20,30,50,100")
    parser.add_argument("--blends", default="0,0.5")
    parser.add_argument("--latency-budget-ms", default="300")
    parser.add_argument("--out", default=None, help="also write the sweep's JSON here")
    args = parser.parse_args(argv)
    before = machine()
    command = ["tradeoffs", "--dataset", args.dataset, "--split", args.split, "--models", *args.models, "--depths", args.depths,
               "--blends", args.blends, "--latency-budget-ms", args.latency_budget_ms, "--no-overlay", "--json"]  # fmt: skip
    start = time.perf_counter()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(command)
    wall = time.perf_counter() - start
    if code:
        return code
    result = json.loads(out.getvalue())
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    print(f"command: python -m reranker {' '.join(command)}")
    print(f"{machine_line(before)}; load after: {machine()['load_average']}")
    print(f"wall time: {wall:.1f} s (process start and imports excluded), {len(result['points'])} points, "
          f"{result['measurement']['pairs_scored']} pairs scored once, {result['queries']} queries")
    print(f"{'model':34} {'depth':>5} {'blend':>5} {'nDCG@10':>8} {'R@10':>6} {'p50 ms':>8} {'p95 ms':>8}")
    front = {(p["model"], p["depth"], p["blend"]) for p in result["front"]}
    for p in sorted(result["points"], key=lambda p: p["p50_ms"]):
        mark = "*" if (p["model"], p["depth"], p["blend"]) in front else " "
        print(f"{mark}{p['model'][-33:]:33} {p['depth']:>5} {p['blend']:>5g} {p['ndcg@10']:>8.4f} {p['recall@10']:>6.3f} "
              f"{p['p50_ms']:>8.1f} {p['p95_ms']:>8.1f}")  # fmt: skip
    print(f"recommendation (budget {result['budget_ms']} ms): {result['reason']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
