"""Shared helpers for the benchmark scripts: machine description, query sampling, tables, statistics."""

from __future__ import annotations

import math
import os
import random
import resource
import sys
from collections.abc import Mapping, Sequence

from reranker.corpus import Dataset, load_dataset
from reranker.errors import ModelUnavailableError
from reranker.models import DEFAULT_BI_ENCODER
from reranker.speed import cpu_model, physical_cores


def machine() -> dict[str, object]:
    """CPU model, usable cores, torch threads, and the load average (other work on a shared box)."""
    import torch

    return {
        "cpu": cpu_model(),
        "cores": physical_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def machine_line(info: Mapping[str, object]) -> str:
    load = info.get("load_average")
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ""
    return (
        f"machine: {info['cpu']}, {info['cores']} cores{gpu}, torch {info['torch']} with {info['torch_threads']} threads"
        + (f", load average {load[0]:.1f} (1 min)" if load else "")
    )


def load(path: str) -> Dataset:
    dataset = load_dataset(path)
    for problem in dataset.problems:
        print(f"note: {problem}", file=sys.stderr)
    return dataset


def sample_queries(dataset: Dataset, n: int, seed: int = 0) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """n queries (judged ones first: test split, then any split) and the qrels that cover them."""
    qrels: dict[str, dict[str, int]] = {}
    for split in ("test", *sorted(dataset.qrels)):
        for qid, rels in dataset.qrels.get(split, {}).items():
            qrels.setdefault(qid, dict(rels))
    judged = sorted(q for q in qrels if q in dataset.queries)
    pool = judged or sorted(dataset.queries)
    if not pool:  # a plain document folder: use document titles (or openings) as queries
        docs = dataset.corpus.documents
        pool_queries = {f"doc:{d.id}": (d.title or " ".join(d.text.split()[:12])) for d in docs}
        rng = random.Random(seed)
        picked = rng.sample(sorted(pool_queries), min(n, len(pool_queries)))
        return {q: pool_queries[q] for q in picked}, {}
    rng = random.Random(seed)
    picked = rng.sample(pool, min(n, len(pool)))
    return {q: dataset.queries[q] for q in picked}, {q: qrels[q] for q in picked if q in qrels}


def cross_encoder_spec(requested: str) -> tuple[str, str]:
    """(model spec, note): "auto" is the pipeline's offline default, else the bundled MiniLM weights."""
    from reranker.pipeline import resolve_cross_encoder_spec

    if requested != "auto":
        return requested, ""
    try:
        spec = resolve_cross_encoder_spec("auto")
    except ModelUnavailableError:
        spec = None
    if spec:
        return spec, ""
    return DEFAULT_BI_ENCODER, (
        f"no trained cross-encoder is available offline; using the bundled {DEFAULT_BI_ENCODER} weights as a "
        "CrossEncoder (same architecture and cost, untrained head: agreement is meaningful, nDCG is not)"
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ndcg_at_k(ranking: Sequence[str], rels: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains and log2 discounts (as trec_eval and ranx compute it)."""
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 1024 / 1024


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with right-aligned numbers (also valid Markdown)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join([line, rule, *body])


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)
