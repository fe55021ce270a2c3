"""Latency of score explanations (`reranker.explain`) for 400-token windows: the interactive goal is ≤ 2 s
per window on 2 CPU cores.

Each judged query of the dataset is paired with its relevant document; the document's deciding window is
cut to exactly `--window-tokens` tokens of text, and that text is explained with every method and
granularity asked for. The score cache is emptied before each text, then the window is scored once as a
search would have scored it (not counted: in the app the explanation follows a search), and the explanation
is timed: wall milliseconds, and CPU seconds of this process (all torch threads), which a busy machine
inflates less than wall time. One warm-up explanation is not counted.

    python -m benchmarks.explain --dataset corpora/longdocs --windows 10
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import cross_encoder_spec, load, machine, machine_line, percentile, sample_queries, table
from reranker.cross_encoder import CrossEncoderReranker
from reranker.explain import DEFAULT_SPAN_TOKENS, DEFAULT_STEPS, GRANULARITIES, METHODS, explain
from reranker.types import Document

GOAL_MS = 2000.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.explain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="corpora/longdocs", help="BEIR folder with qrels (default: corpora/longdocs)")
    parser.add_argument("--windows", type=int, default=10, help="(query, window) pairs to explain per configuration")
    parser.add_argument("--window-tokens", type=int, default=400, help="tokens per explained window")
    parser.add_argument("--model", default="auto", help="cross-encoder (default: the pipeline's offline default)")
    parser.add_argument("--max-length", type=int, default=512, help="tokens per pair (the window plus the query must fit)")
    parser.add_argument("--methods", nargs="+", default=["occlusion"], choices=METHODS)
    parser.add_argument("--granularities", nargs="+", default=list(GRANULARITIES), choices=GRANULARITIES)
    parser.add_argument("--span-tokens", type=int, default=DEFAULT_SPAN_TOKENS)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    return parser


def windows_to_explain(reranker: CrossEncoderReranker, dataset, n: int, tokens: int, seed: int) -> list[tuple[str, str, str]]:
    """(query, doc id, text of exactly `tokens` tokens) per judged query: its relevant document's deciding window,
    moved back from the document's end where needed so that it is a full window."""
    queries, qrels = sample_queries(dataset, n, seed)
    out = []
    for qid, query in queries.items():
        relevant = [d for d, grade in sorted(qrels.get(qid, {}).items()) if grade > 0 and d in dataset.corpus]
        if not relevant:
            continue
        doc = dataset.corpus[relevant[0]]
        ids, offsets = reranker.tokens(doc.full_text)
        if len(ids) < tokens:
            continue
        scores, _, _, _ = reranker.score_documents(query, [doc])
        start = min(scores[0].chunks[scores[0].deciding_chunk].token_start, len(ids) - tokens)
        out.append((query, doc.id, doc.full_text[offsets[start][0] : offsets[start + tokens - 1][1]]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    dataset = load(args.dataset)
    spec, note = cross_encoder_spec(args.model)
    reranker = CrossEncoderReranker(
        spec,
        max_length=args.max_length,
        chunk_tokens=args.window_tokens,
        chunk_overlap=min(100, args.window_tokens // 4),
        max_windows_per_document=None,
    )
    items = windows_to_explain(reranker, dataset, args.windows + 1, args.window_tokens, args.seed)
    if len(items) < 2:
        raise SystemExit(f"{args.dataset}: fewer than 2 judged documents of {args.window_tokens}+ tokens to explain")
    configs = [(m, g) for m in args.methods for g in args.granularities]
    options = {"span_tokens": args.span_tokens, "steps": args.steps}
    explain(reranker, items[0][0], items[0][2], method=configs[0][0], granularity=configs[0][1], **options)  # warm-up
    rows, report = [], {}
    for method, granularity in configs:
        wall, cpu, spans, window_tokens, inputs = [], [], [], [], []
        for query, _doc_id, text in items[1:]:
            reranker.cache.clear()  # its own score cache (the default)
            reranker.score_documents(query, [Document("w", text)])  # what the search already scored
            started, cpu_started = time.perf_counter(), time.process_time()
            explanation = explain(reranker, query, text, method=method, granularity=granularity, **options)
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append(time.process_time() - cpu_started)
            spans.append(len(explanation.spans))
            window_tokens.append(explanation.window.token_end - explanation.window.token_start)
            inputs.append(explanation.inputs)
        name = f"{method}/{granularity}"
        report[name] = {
            "windows": len(wall),
            "window_tokens_mean": sum(window_tokens) / len(window_tokens),
            "spans_mean": sum(spans) / len(spans),
            "inputs_mean": sum(inputs) / len(inputs),
            "wall_ms": {"p50": percentile(wall, 50), "p95": percentile(wall, 95), "max": max(wall)},
            "cpu_s": {"p50": percentile(cpu, 50), "p95": percentile(cpu, 95)},
            "within_goal": sum(w <= GOAL_MS for w in wall),
            "raw_wall_ms": [round(w, 1) for w in wall],
        }
        stats = report[name]
        rows.append(
            [
                method,
                granularity,
                stats["windows"],
                round(stats["window_tokens_mean"]),
                round(stats["spans_mean"], 1),
                stats["wall_ms"]["p50"],
                stats["wall_ms"]["p95"],
                stats["cpu_s"]["p50"],
                f"{stats['within_goal']}/{stats['windows']}",
            ]
        )
    info = machine()
    output = {
        "dataset": dataset.path,
        "model": spec,
        "note": note,
        "max_length": reranker.max_length,
        "precision": "fp32",
        "span_tokens": args.span_tokens,
        "steps": args.steps,
        "goal_ms": GOAL_MS,
        "configurations": report,
        "machine": info,
    }
    if args.json:
        print(json.dumps(output, indent=2))
        return 0
    print(machine_line(info))
    print(
        f"dataset {dataset.path}, model {spec} (fp32, {reranker.max_length} tokens per pair), "
        f"{len(items) - 1} windows of {args.window_tokens} tokens, token spans of {args.span_tokens}"
    )
    if note:
        print(f"note: {note}")
    headers = ["method", "granularity", "windows", "tokens", "spans", "p50 ms", "p95 ms", "cpu s p50", "≤ 2 s"]
    print(table(headers, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
