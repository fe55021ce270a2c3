"""Expected quality figures for reference configurations (pyserini-style regression table).

`python -m benchmarks.expected_metrics` re-measures every entry of expected_metrics.json and prints
the differences; `--update` writes the new figures (do that only for a change meant to move them,
and say why in the commit). tests/test_expected_metrics.py checks the same entries with a tolerance.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

from reranker.corpus import Dataset, load_dataset
from reranker.evaluation.analysis import evaluate_configurations, parse_configurations
from reranker.pipeline import Pipeline, PipelineConfig

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ROOT / "benchmarks" / "expected_metrics.json"
logger = logging.getLogger(__name__)


def load_expected(path: Path = EXPECTED) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def dataset_path(entry: dict) -> Path:
    return (ROOT / entry["path"]).resolve()


def fingerprint(dataset: Dataset, split: str) -> str:
    """Corpus text plus the split's judgments: figures are only comparable on identical data."""
    digest = hashlib.sha256(dataset.corpus.fingerprint.encode())
    for qid, docs in sorted(dataset.split_qrels(split).items()):
        digest.update(f"{qid}:{sorted(docs.items())}".encode())
    return digest.hexdigest()[:16]


def measure(entry: dict, dataset: Dataset | None = None, pipeline: Pipeline | None = None) -> dict[str, dict[str, float]]:
    """Mean metrics per configuration of one entry, with the project's default settings
    (an entry's optional "model" is what its "auto" configurations must resolve to)."""
    dataset = dataset or load_dataset(dataset_path(entry))
    pipeline = pipeline or Pipeline(dataset.corpus, PipelineConfig(cross_encoder=None))
    queries = dataset.split_queries(entry["split"])
    if entry.get("query_ids"):  # a fixed subset, e.g. queries a fine-tuned model never saw
        queries = {q: queries[q] for q in entry["query_ids"] if q in queries}
    if entry.get("queries"):
        queries = dict(list(queries.items())[: entry["queries"]])
    configs = parse_configurations(list(entry["configurations"]))
    report = evaluate_configurations(pipeline, queries, dataset.split_qrels(entry["split"]), configs)
    out = {}
    for result in report.configurations:
        if not result.ok:
            raise RuntimeError(f"{entry['path']}: configuration {result.name} could not run: {result.error}")
        out[result.name] = {m: round(v, 4) for m, v in result.means.items()}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--update", action="store_true", help="write the measured figures into expected_metrics.json")
    parser.add_argument("--only", help="measure only this entry (e.g. knowledge:test)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    expected = load_expected()
    for name, entry in expected["entries"].items():
        if args.only and name != args.only:
            continue
        path = dataset_path(entry)
        if not path.exists():
            print(f"{name}: {path} is missing, skipped")
            continue
        dataset = load_dataset(path)
        figures = measure(entry, dataset)
        for config, metrics in figures.items():
            old = entry["configurations"].get(config, {})
            diffs = ", ".join(f"{m} {v:.4f} ({v - old.get(m, v):+.4f})" for m, v in metrics.items())
            print(f"{name} {config}: {diffs}")
        if args.update:
            entry["configurations"] = figures
            entry["fingerprint"] = fingerprint(dataset, entry["split"])
            if any(config.startswith("auto") for config in figures):  # the test skips when auto resolves elsewhere
                from reranker.pipeline import resolve_cross_encoder_spec

                entry["model"] = resolve_cross_encoder_spec("auto")
    if args.update:
        EXPECTED.write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {EXPECTED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
