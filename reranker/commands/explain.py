"""`python -m reranker explain`: each sentence's contribution to one document's cross-encoder score, in the
window that decided it (occlusion by default; integrated gradients on request), as a table or JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from reranker.api import Reranker
from reranker.commands.arguments import Option, add_config_arguments
from reranker.commands.common import Command, pipeline_config
from reranker.corpus import load_dataset
from reranker.errors import ConfigError
from reranker.explain import DEFAULT_SPAN_TOKENS, DEFAULT_STEPS, GRANULARITIES, METHODS, Explanation
from reranker.pipeline import PipelineConfig, resolve_cross_encoder_spec

# The cross-encoder settings are PipelineConfig's fields that Reranker shares (chunking, precision, device,
# ...), derived rather than listed; the first-stage settings cannot change one document's explanation.
RERANKER_FIELDS = tuple(f.name for f in dataclasses.fields(Reranker) if f.init and f.name in PipelineConfig.__dataclass_fields__)
SHOWN = {"cross_encoder", *RERANKER_FIELDS} - {"top_n", "max_windows_per_query"}
EXPLAIN_OPTIONS = {f.name: Option(hidden=True) for f in dataclasses.fields(PipelineConfig) if f.name not in SHOWN}
BAR = 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="BEIR folder, document file(s) folder, or a .zip")
    parser.add_argument("--query", required=True, help="the query text, or the id of one of the dataset's queries")
    parser.add_argument("--doc", required=True, help="the id of the document to explain")
    parser.add_argument("--method", choices=METHODS, default="occlusion", help="how contributions are measured")
    parser.add_argument(
        "--granularity", choices=GRANULARITIES, default="sentence", help="sentences, or fixed spans of --span-tokens tokens"
    )
    parser.add_argument("--span-tokens", type=int, default=DEFAULT_SPAN_TOKENS, help="tokens per span with --granularity tokens")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="integrated-gradients steps")
    parser.add_argument("--window", type=int, default=None, help="explain this window (1 = first) instead of the deciding one")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_config_arguments(parser.add_argument_group("cross-encoder settings"), PipelineConfig, EXPLAIN_OPTIONS)


def run(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset)
    for problem in dataset.problems:
        print(f"note: {problem}", file=sys.stderr)
    doc = dataset.corpus.get(args.doc)
    if doc is None:
        some = ", ".join(d.id for d in dataset.corpus.documents[:5])
        raise ConfigError(f"no document with id {args.doc!r} in {args.dataset} (ids look like: {some})")
    query = dataset.queries.get(args.query, args.query)
    if query != args.query:
        print(f"note: query {args.query} is {query!r}", file=sys.stderr)
    config = pipeline_config(args)
    config.validate()
    spec = resolve_cross_encoder_spec(config.cross_encoder)
    if spec is None:
        raise ConfigError(
            "no cross-encoder to explain: --cross-encoder is none, or 'auto' found none offline. "
            "Pass --cross-encoder with a hub id or a local model directory."
        )
    if args.window is not None and args.window < 1:
        raise ConfigError(f"--window counts from 1, not {args.window}")
    reranker = Reranker(model=spec, **{name: getattr(config, name) for name in RERANKER_FIELDS})
    explanation = reranker.explain(
        query,
        doc,
        method=args.method,
        granularity=args.granularity,
        span_tokens=args.span_tokens,
        steps=args.steps,
        window=None if args.window is None else args.window - 1,
    )
    for message in explanation.messages:
        print(f"note: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({"dataset": args.dataset, "doc_id": doc.id, **explanation.to_json()}, indent=2, ensure_ascii=False))
    else:
        print(format_explanation(explanation, doc.id, doc.title))
    return 0


def format_explanation(explanation: Explanation, doc_id: str, title: str = "") -> str:
    """A plain-text report: the window and its score, the unit, then one row per span in text order."""
    window = explanation.window
    which = "decided the score" if explanation.deciding else "(not the deciding window)"
    lines = [
        f"query:    {explanation.query}",
        f"document: {doc_id}" + (f"  {title}" if title else ""),
        f"model:    {explanation.model} ({explanation.precision})",
        f"window {window.index + 1} of {explanation.windows} (tokens {window.token_start}-{window.token_end}, characters "
        f"{window.start}-{window.end}) {which}: logit {explanation.score:+.3f}",
        f"method:   {explanation.how}; {explanation.ms:.0f} ms",
        f"unit:     {explanation.unit_help}",
        "",
        f"{'change':>8}  {'':<{BAR}}  {'sentence' if explanation.granularity == 'sentence' else 'token span'}",
    ]
    scale = explanation.scale or 1.0
    for span in explanation.spans:
        filled = round(BAR * abs(span.delta) / scale)
        bar = ("█" if span.delta >= 0 else "▒") * filled
        text = " ".join(span.text.split())
        lines.append(f"{span.delta:+8.3f}  {bar:<{BAR}}  {text[:100] + ('…' if len(text) > 100 else '')}")
    top = explanation.top
    if top is not None:
        lines += ["", f"largest: {top.delta:+.3f} {explanation.unit}: {' '.join(top.text.split())[:100]}"]
    return "\n".join(lines)


COMMAND = Command(
    "explain", "each sentence's contribution (logit change) to a document's score in its deciding window", add_arguments, run
)
