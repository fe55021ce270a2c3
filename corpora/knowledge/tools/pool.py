"""Pool the knowledge corpus for relevance judging with the project's own first stages.

For every query in queries.jsonl this runs the `reranker` pipeline without a cross-encoder
(BM25 + dense bi-encoder + RRF fusion, the defaults of PipelineConfig) and records the top
DEPTH passage ids of the bm25, dense and fused lists. The union is the judging pool; build.py
marks every pooled passage without an explicit grade as judged not relevant (0).

Pools are stored in tools/pools/<name>.json together with the settings and package commit, and
all pool files are kept: a passage pooled by any run stays judged.

  HF_HUB_OFFLINE=1 .venv/bin/python corpora/knowledge/tools/pool.py --depth 25 --name package-d25
  HF_HUB_OFFLINE=1 .venv/bin/python corpora/knowledge/tools/pool.py --depth 50 --stages fused --name fused-d50
  HF_HUB_OFFLINE=1 .venv/bin/python corpora/knowledge/tools/pool.py --check   # list unjudged pooled docs
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASET = HERE.parent
REPO = DATASET.parent.parent
STAGES = ("bm25", "dense", "fused")


def run_pools(depth: int, stages: tuple[str, ...] = STAGES, **overrides) -> dict[str, dict[str, list[str]]]:
    sys.path.insert(0, str(REPO))
    from reranker.corpus import load_dataset
    from reranker.pipeline import Pipeline, PipelineConfig

    ds = load_dataset(DATASET)
    # The first stages keep their default depth (fused lists depend on it); each list is cut at `depth`.
    pipeline = Pipeline(ds.corpus, PipelineConfig(cross_encoder=None, retrieval_depth=max(depth, 100), **overrides))
    pools = {}
    for line in (DATASET / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        result = pipeline.search(q["text"])
        pools[q["_id"]] = {s: list(result.stages[s].doc_ids()[:depth]) for s in stages}
    return pools


def judged_pairs() -> set[tuple[str, str]]:
    pairs = set()
    for split in ("train", "test"):
        with (DATASET / "qrels" / f"{split}.tsv").open(encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                pairs.add((row["query-id"], row["corpus-id"]))
    return pairs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--name", default=None, help="pool file name (default package-d<depth>)")
    ap.add_argument("--bm25-backend", default=None, choices=("bm25s", "rank_bm25"))
    ap.add_argument("--check", action="store_true", help="only report pooled passages missing from the qrels")
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="lists to pool (default: all three)")
    args = ap.parse_args()
    overrides = {"bm25_backend": args.bm25_backend} if args.bm25_backend else {}
    pools = run_pools(args.depth, tuple(args.stages), **overrides)
    if args.check:
        judged = judged_pairs()
        missing = sorted({(q, d) for q, lists in pools.items() for ids in lists.values() for d in ids} - judged)
        for q, d in missing:
            print(f"{q}\t{d}")
        print(f"{len(missing)} pooled passages without a judgment", file=sys.stderr)
        return 1 if missing else 0
    commit = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h", "--", "reranker"],
                            capture_output=True, text=True).stdout.strip()
    out = HERE / "pools" / f"{args.name or f'package-d{args.depth}'}.json"
    out.parent.mkdir(exist_ok=True)
    settings = {"depth": args.depth, "stages": args.stages, "cross_encoder": None, "reranker_commit": commit, **overrides}
    out.write_text(json.dumps({"settings": settings, "pools": pools}, indent=1) + "\n", encoding="utf-8")
    union = [len({d for ids in lists.values() for d in ids}) for lists in pools.values()]
    mean = sum(union) / len(union)
    print(f"wrote {out.name}: {len(pools)} queries, pool size min {min(union)} / mean {mean:.1f} / max {max(union)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
