"""Choose the long-query input policy on dev data: nDCG@10 of fused vs reranked under candidate policies and blends.

For each part of the long-query dev set (corpora/longqueries, built by its tools/build.py) the fused top
`--depth` of every query is reranked by the offline default (`rerank-lens/minilm-l6-general`) under each
candidate pair layout (reranker.input_policy), then blended with the fused score at each candidate weight.
Cross-encoder scores are cached on disk (benchmarks/.cache/long_queries/), so blends cost nothing and a
rerun only scores new pairs. The short dev sets (knowledge, SciFact, MS MARCO dev queries of the general
model's card) are checked for how many queries a policy changes at all: none changed means their rankings
are today's, pair for pair.

    python -m benchmarks.long_queries                       # the dev table (docs/models.md)
    python -m benchmarks.long_queries --latency 12          # ms per long query at depth 50, off vs chosen, one run
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import machine
from reranker.corpus import load_beir
from reranker.cross_encoder import CrossEncoderReranker, ScoreCache
from reranker.evaluation.metrics import evaluate_per_query
from reranker.fusion import interpolate
from reranker.input_policy import UNCHANGED, InputPolicy, blend_for
from reranker.pipeline import Pipeline, PipelineConfig, check_query
from reranker.project_models import MODELS_ROOT, recommended_input_policy
from reranker.types import Hit, RankedList

MODEL = "rerank-lens/minilm-l6-general"
ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache" / "long_queries"
LONG_SETS = ("knowledge-context", "scifact-context", "squad-context", "squad-neighbours")
SHORT_SETS = {  # the general model's dev queries (its card): the policy must leave these as they are
    "knowledge": (ROOT / "corpora" / "knowledge", "train", "knowledge.dev_queries.txt"),
    "scifact": (ROOT.parent / "shared" / "datasets" / "scifact", "train", "scifact.dev_queries.txt"),
    "msmarco-dev-pos": (ROOT.parent / "shared" / "datasets" / "msmarco-dev-pos", "train", "msmarco-dev-pos.dev_queries.txt"),
    "wikiqa (held-out)": (ROOT.parent / "shared" / "datasets" / "wikiqa", "train", "wikiqa.heldout_queries.txt"),
}
TEST_SPLITS = {  # measured once after the choice: a policy that changes none of their queries leaves their figures
    "knowledge test": (ROOT / "corpora" / "knowledge", "test", None),
    "longdocs test": (ROOT / "corpora" / "longdocs", "test", None),
}
CANDIDATES: dict[str, InputPolicy] = {
    "off (today)": UNCHANGED,
    "256, query cut to 115, edges": InputPolicy(min_window_tokens=138, cut_query_share=0.45, query_cut="edges"),
    "512, window >= 192, start": InputPolicy(extend_long_queries=True, min_window_tokens=192, query_cut="start"),
    "512, window >= 192, edges": InputPolicy(extend_long_queries=True, min_window_tokens=192, query_cut="edges"),
}
BLENDS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# Blend by disagreement, tried offline: (Spearman rho below which the fused score gets the higher weight, weight).
DISAGREEMENT_RULES = ("rho<0.3: 0.8", "rho<0.3: 1.0", "rho<0: 0.8")


def rank_agreement(reranked: RankedList, fused: RankedList) -> float:
    """Spearman correlation of the cross-encoder's and fusion's scores over the reranked documents."""
    from scipy.stats import spearmanr

    ids = reranked.doc_ids()
    if len(ids) < 3:
        return 1.0
    rho = spearmanr([reranked.get(d).score for d in ids], [fused.get(d).score for d in ids]).statistic
    return 1.0 if rho != rho else float(rho)


def blend_by_agreement(rule: float | str, rho: float) -> float:
    """A fixed weight, or a disagreement rule: the card's 0.5 unless rho is below the rule's threshold."""
    if isinstance(rule, float):
        return rule
    threshold, weight = rule.removeprefix("rho<").split(": ")
    return float(weight) if rho < float(threshold) else 0.5


def load_cache(model_key: str) -> ScoreCache:
    """Scores of earlier runs, keyed anew by this model's key: the cache holds one model's scores only, and its
    key names the rebuilt model's folder, which changes with the card."""
    cache = ScoreCache(max_entries=2_000_000)
    for path in sorted(CACHE.glob("scores*.pkl")):
        for (_, query, window), value in pickle.loads(path.read_bytes()).items():
            cache.put((model_key, query, window), value)
    return cache


def save_cache(cache: ScoreCache, name: str) -> None:
    """One file per set of dev sets, so runs over different sets at once never overwrite each other's scores."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f"scores-{name}.pkl.tmp{os.getpid()}"
    tmp.write_bytes(pickle.dumps(dict(cache._data)))
    os.replace(tmp, CACHE / f"scores-{name}.pkl")


def fused_lists(folder: Path, split: str, depth: int, only: set[str] | None = None) -> tuple[dict, dict, object]:
    """(query texts, fused lists, corpus) of a BEIR folder's split; the fused lists are cached on disk."""
    dataset = load_beir(folder)
    qids = [q for q in dataset.qrels[split] if only is None or q in only]
    queries = {q: dataset.queries[q] for q in qids}
    path = CACHE / f"fused-{folder.name}-{split}-{dataset.corpus.fingerprint[:12]}-{len(qids)}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
    else:
        pipeline = Pipeline(dataset.corpus, PipelineConfig(cross_encoder=None))
        stored = {q: [[h.doc_id, h.score] for h in pipeline.search(queries[q]).after.hits] for q in qids}
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored))
    lists = {
        q: RankedList("fused", tuple(Hit(d, r, s, "fused") for r, (d, s) in enumerate(hits[:depth], 1)), "RRF")
        for q, hits in stored.items()
    }
    return queries, lists, dataset


def ndcg(qrels, run) -> dict[str, float]:
    return {q: v["ndcg@10"] for q, v in evaluate_per_query(qrels, run, ("ndcg@10",)).items()}


def paired(a: dict[str, float], b: dict[str, float]) -> tuple[float, float, int, int]:
    """Mean difference b - a, paired t-test p, wins, losses."""
    from scipy.stats import ttest_rel

    qs = sorted(a)
    diff = statistics.fmean(b[q] - a[q] for q in qs)
    p = float(ttest_rel([b[q] for q in qs], [a[q] for q in qs]).pvalue) if any(a[q] != b[q] for q in qs) else 1.0
    return diff, p, sum(b[q] > a[q] for q in qs), sum(b[q] < a[q] for q in qs)


def sweep(args) -> None:
    reranker = CrossEncoderReranker(MODEL)
    cache = reranker.cache = load_cache(reranker._cache_key)
    chosen = recommended_input_policy(reranker.loaded.resolved.path)
    card_blend = 0.5
    print(f"machine: {machine()}", file=sys.stderr)
    pooled: dict[tuple[str, float], dict[str, float]] = {}
    pooled_fused: dict[str, float] = {}
    rows = []
    for part in args.sets:
        folder = ROOT / "corpora" / "longqueries" / "build" / part
        queries, lists, dataset = fused_lists(folder, "dev", args.depth)
        qrels = {q: dataset.qrels["dev"][q] for q in queries}
        fused = ndcg(qrels, {q: lists[q].as_run() for q in queries})
        pooled_fused.update({f"{part}/{q}": v for q, v in fused.items()})
        rows.append((part, "fused", None, statistics.fmean(fused.values()), None, len(queries)))
        for name, policy in CANDIDATES.items():
            if args.candidates and not any(name.startswith(c) for c in args.candidates):
                continue
            started = time.perf_counter()
            raw = {}
            for q, text in queries.items():
                raw[q] = reranker.rerank(check_query(text), lists[q], dataset.corpus, depth=args.depth, policy=policy).ranked
            seconds = time.perf_counter() - started
            save_cache(cache, "+".join(args.sets))
            agreement = {q: rank_agreement(raw[q], lists[q]) for q in queries}
            for blend in (*BLENDS, *DISAGREEMENT_RULES):
                weights = {q: blend_by_agreement(blend, agreement[q]) for q in queries}
                run = {q: interpolate(raw[q], lists[q], weights[q]).as_run() for q in queries}
                scores = ndcg(qrels, run)
                pooled.setdefault((name, blend), {}).update({f"{part}/{q}": v for q, v in scores.items()})
                rows.append((part, name, blend, statistics.fmean(scores.values()), paired(fused, scores), len(queries)))
            print(f"{part} / {name}: {seconds:.0f} s (scoring, cache included)", file=sys.stderr)
    print(f"\nnDCG@10, long-query dev set, fused top {args.depth} reranked by {MODEL}; blend = weight of the fused score\n")
    print("| part | ranking | blend | nDCG@10 | vs fused (p, wins/losses) |")
    print("|---|---|---|---|---|")
    for part, name, blend, mean, test, n in rows:
        detail = f"{test[0]:+.4f} (p = {test[1]:.2g}, {test[2]} / {test[3]})" if test else f"{n} queries"
        print(f"| {part} | {name} | {'' if blend is None else blend:} | {mean:.4f} | {detail} |")
    print("\npooled over the parts:\n")
    print("| ranking | blend | nDCG@10 | vs fused (p, wins/losses) |")
    print("|---|---|---|---|")
    print(f"| fused | | {statistics.fmean(pooled_fused.values()):.4f} | {len(pooled_fused)} queries |")
    for (name, blend), scores in pooled.items():
        diff, p, wins, losses = paired(pooled_fused, scores)
        print(f"| {name} | {blend} | {statistics.fmean(scores.values()):.4f} | {diff:+.4f} (p = {p:.2g}, {wins} / {losses}) |")
    print(f"\nshort dev sets and test splits: queries the card's policy ({chosen}) changes at all (pair layout or blend)\n")
    print("| dev set | queries | long (blend changes) | pair layout changes |")
    print("|---|---|---|---|")
    for name, (folder, split, ids_file) in {**SHORT_SETS, **TEST_SPLITS}.items():
        if not folder.is_dir():
            continue
        dataset = load_beir(folder)
        ids = set((MODELS_ROOT / "minilm-l6-general" / ids_file).read_text().split()) if ids_file else set(dataset.qrels[split])
        texts = [check_query(dataset.queries[q]) for q in ids if q in dataset.queries]
        plans = [(reranker.plan_query(t, chosen), reranker.plan_query(t, UNCHANGED)) for t in texts]
        blends = sum(blend_for(card_blend, new, chosen) != card_blend for new, _ in plans)
        layouts = sum(new != old for new, old in plans)
        print(f"| {name} | {len(texts)} | {blends} | {layouts} |")


def latency(args) -> None:
    """Milliseconds per long query at depth 50, today's layout vs the card's, interleaved query by query."""
    reranker_off = CrossEncoderReranker(MODEL, cache=None)
    chosen = recommended_input_policy(reranker_off.loaded.resolved.path)
    print(f"machine: {json.dumps(machine())}")
    times: dict[str, list[float]] = {"off (today)": [], "card policy": []}
    windows: dict[str, int] = {"off (today)": 0, "card policy": 0}
    for part in args.sets:
        folder = ROOT / "corpora" / "longqueries" / "build" / part
        queries, lists, dataset = fused_lists(folder, "dev", 50)
        for q in list(queries)[: args.latency]:
            for name, policy in (("off (today)", UNCHANGED), ("card policy", chosen)):
                started = time.perf_counter()
                out = reranker_off.rerank(check_query(queries[q]), lists[q], dataset.corpus, depth=50, policy=policy)
                times[name].append((time.perf_counter() - started) * 1000)
                windows[name] += sum(len(s.chunks) for s in out.scores)
    n = len(times["off (today)"])
    print(f"\n{n} long queries ({args.latency} per part), fused top 50 reranked, no score cache, interleaved\n")
    print("| layout | mean ms/query | median | windows/query |")
    print("|---|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.fmean(values):,.0f} | {statistics.median(values):,.0f} | {windows[name] / n:.0f} |")
    ratio = statistics.fmean(times["off (today)"]) / statistics.fmean(times["card policy"])
    print(f"\nspeed-up of the card policy: {ratio:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=30)
    parser.add_argument("--sets", nargs="+", default=list(LONG_SETS))
    parser.add_argument("--candidates", nargs="+", help="only the candidate policies whose names start so")
    parser.add_argument("--latency", type=int, default=0, help="time this many queries per part at depth 50 instead")
    args = parser.parse_args(argv)
    if args.latency:
        latency(args)
    else:
        sweep(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
