"""The long-query dev set (corpora/longqueries): its build script reproduces the files it records."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "corpora" / "longqueries"
SHARED = REPO.parent / "shared" / "datasets"


def _build_module():
    spec = importlib.util.spec_from_file_location("longqueries_build", FOLDER / "tools" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bundled_part_is_rebuilt_byte_for_byte(tmp_path):
    build = _build_module()
    manifest = build.build(SHARED, tmp_path, ("knowledge-context",))
    for name in ("queries.jsonl", "qrels/dev.tsv"):
        assert (tmp_path / "knowledge-context" / name).read_bytes() == (FOLDER / "knowledge-context" / name).read_bytes()
    recorded = json.loads((FOLDER / "manifest.json").read_text())["parts"]
    assert manifest["parts"]["knowledge-context"] == recorded["knowledge-context"]


@pytest.mark.skipif(not (SHARED / "scifact").is_dir(), reason="../shared/datasets is not on this machine")
def test_the_parts_built_from_shared_data_match_the_manifest(tmp_path):
    build = _build_module()
    manifest = build.build(SHARED, tmp_path, ("scifact-context", "squad-context", "squad-neighbours"))
    recorded = json.loads((FOLDER / "manifest.json").read_text())["parts"]
    for part in ("scifact-context", "squad-context", "squad-neighbours"):
        assert manifest["parts"][part] == recorded[part]


def test_every_query_is_long_and_judged():
    recorded = json.loads((FOLDER / "manifest.json").read_text())["parts"]
    assert all(info["words"]["min"] >= 60 for info in recorded.values())
    queries = [json.loads(line) for line in (FOLDER / "knowledge-context" / "queries.jsonl").read_text().splitlines()]
    judged = {line.split("\t")[0] for line in (FOLDER / "knowledge-context" / "qrels" / "dev.tsv").read_text().splitlines()[1:]}
    assert {q["_id"] for q in queries} == judged and len(queries) == recorded["knowledge-context"]["queries"]
