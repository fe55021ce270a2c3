"""The package's shape: no module imports itself through others, and a pipeline default is written once.

The import graph is read with `ast` from every `import` in every module of `reranker/`, inside
functions too (a function-level import that closes a cycle is still a cycle), except the ones under
`if TYPE_CHECKING:`. The defaults test edits a copy of `PipelineConfig`'s defaults and checks that the
app's settings, both pipeline commands (search, eval) and `Reranker`/`rerank` follow without another edit.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reranker.pipeline import PipelineConfig
from reranker.ui.settings import INTERACTIVE_RERANK_DEPTH, MODEL_BLEND, SETTING_FIELDS

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "reranker"


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of import nodes under `if TYPE_CHECKING:` (they never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its code."""
    modules = {module_name(p, package.parent): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_only(tree)
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from package import module` imports the module; `from module import name` the module
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
        graph[name] = set()
        for target in targets:
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"reranker.cli", "reranker.ui.layout", "reranker.commands.arguments", "reranker.evaluation.metrics"} <= set(graph)
    assert "reranker.ui.settings" in graph["reranker.ui.search_tab"]  # imports are seen
    assert "reranker.evaluation.metrics" in graph["reranker.ui.state"]  # function-level ones too
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import helper\n")
    (package / "b.py").write_text("def helper():\n    from pkg import a\n    return a\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    (package / "d.py").write_text("from . import c\n")
    graph = import_graph(package)
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    assert graph["pkg.c"] == set() and graph["pkg.d"] == {"pkg.c"}


def _changed_defaults(source: str, class_name: str = "PipelineConfig") -> tuple[str, dict[str, object]]:
    """The module with every literal or named default of the dataclass `class_name` changed (bools and None kept)."""
    tree = ast.parse(source)
    config = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    lines = source.splitlines(keepends=True)
    changed: dict[str, object] = {}
    for node in reversed(config.body):  # from the bottom, so earlier offsets stay valid
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None):
            continue
        value = node.value
        if isinstance(value, ast.Constant) and type(value.value) in (int, float):
            new: object = value.value + (1 if type(value.value) is int else 0.5)
        elif (isinstance(value, ast.Constant) and isinstance(value.value, str)) or (
            isinstance(value, ast.Name) and not any(t in ast.unparse(node.annotation) for t in ("int", "float"))
        ):
            new = f"changed-{node.target.id}"
        else:
            continue
        line = lines[value.lineno - 1]
        lines[value.lineno - 1] = line[: value.col_offset] + repr(new) + line[value.end_col_offset :]
        changed[node.target.id] = new
    return "".join(lines), changed


REPORT = """
import dataclasses, inspect, json
import reranker, reranker.ui, reranker.cli
from reranker import Reranker, rerank
from reranker.cli import build_parser
from reranker.commands.common import pipeline_config
from reranker.pipeline import PipelineConfig
from reranker.ui.settings import Settings

parse = build_parser().parse_args
print(json.dumps({
    "pipeline": dataclasses.asdict(PipelineConfig()),
    "page": dataclasses.asdict(Settings()),
    "search": dataclasses.asdict(pipeline_config(parse(["search", "--dataset", "d", "--query", "q"]))),
    "eval": dataclasses.asdict(pipeline_config(parse(["eval", "--dataset", "d"]))),
    "reranker": {f.name: f.default for f in dataclasses.fields(Reranker) if f.init and f.name != "model"},
    "rerank": {n: p.default for n, p in inspect.signature(rerank).parameters.items() if p.kind == p.KEYWORD_ONLY},
}))
"""


@pytest.mark.slow
def test_a_changed_pipeline_default_reaches_the_page_and_the_command_line(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "reranker", ignore=shutil.ignore_patterns("__pycache__"))
    changed = {}
    for module, name in (("pipeline.py", "PipelineConfig"), ("cross_encoder_settings.py", "CrossEncoderSettings")):
        path = tmp_path / "reranker" / module
        source, changed_here = _changed_defaults(path.read_text(encoding="utf-8"), name)
        path.write_text(source, encoding="utf-8")
        changed |= changed_here
    assert {"rrf_k", "retrieval_depth", "rerank_depth", "top_n", "chunk_tokens", "aggregation", "bi_encoder"} <= set(changed)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", REPORT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {k: seen["pipeline"][k] for k in changed} == changed  # the edited copy is what ran
    original = dataclasses.asdict(PipelineConfig())
    assert all(original[k] != v for k, v in changed.items())
    assert seen["search"] == seen["pipeline"] and seen["eval"] == seen["pipeline"]
    page = seen["page"]
    for name in SETTING_FIELDS:
        if name == "rerank_depth":
            assert page[name] == INTERACTIVE_RERANK_DEPTH  # the app's named override, not a copy of the default
        elif name == "blend":  # the page writes the model card's recommendation as a choice of its own
            assert page[name] == MODEL_BLEND and seen["pipeline"]["blend"] is None
        elif name == "latency_budget_ms":  # the page's number box writes no budget as 0
            assert page[name] == 0.0 and seen["pipeline"][name] is None
        elif name in seen["pipeline"]:
            assert page[name] == seen["pipeline"][name], name
    # Reranker and rerank() score texts as the pipeline's cross-encoder stage does, with its defaults
    # (their top_n is their own: None returns every text).
    for api in (seen["reranker"], seen["rerank"]):
        shared = {k: v for k, v in api.items() if k in seen["pipeline"] and k != "top_n"}
        assert len(shared) >= 4 and shared == {k: seen["pipeline"][k] for k in shared}


CARRY_REPORT = """
import json
from reranker import Document, Reranker, build_corpus
from reranker.cli import build_parser
from reranker.commands.common import pipeline_config
from reranker.engines.ray import PairScorer
from reranker.pipeline import PipelineConfig, RerankStages
from reranker.ui.settings import Settings

model = "sentence-transformers/all-MiniLM-L6-v2"
stages = RerankStages(build_corpus([Document("a", "a short text")]), PipelineConfig(cross_encoder=model, probe_knob=11))
loaded = stages.reranker(model)
other = stages.reranker(model, PipelineConfig(cross_encoder=model, probe_knob=12))  # another value, another reranker
page = stages.reranker(model, PipelineConfig(**Settings().overrides(cross_encoder=model)))
cli = pipeline_config(build_parser().parse_args(["search", "--dataset", "d", "--query", "q", "--probe-knob", "13"]))
print(json.dumps({
    "pipeline": loaded.settings.probe_knob,
    "cache_key": other is not loaded and other.settings.probe_knob,
    "api": Reranker(model, probe_knob=14)._engine.settings.probe_knob,
    "cli": cli.probe_knob,
    "page": page.settings.probe_knob,
    "ray": PairScorer(loaded.scorer_spec(), "cpu", 1).scorer.settings.probe_knob,
    "validated": Reranker.__mro__[1].__name__,
}))
"""


@pytest.mark.slow
def test_a_new_cross_encoder_setting_reaches_pipeline_api_cli_page_and_ray(tmp_path):
    """One field added to `CrossEncoderSettings` (and one page widget's field) and nothing else: every place a
    cross-encoder is configured carries it to the loaded model, the pipeline keys its cache by it, Ray ships it."""
    shutil.copytree(PACKAGE, tmp_path / "reranker", ignore=shutil.ignore_patterns("__pycache__"))
    settings_py = tmp_path / "reranker" / "cross_encoder_settings.py"
    source = settings_py.read_text(encoding="utf-8")
    anchor = "    allow_untrained_head: bool = False\n"
    assert source.count(anchor) == 1
    settings_py.write_text(source.replace(anchor, anchor + "    probe_knob: int = 3\n"), encoding="utf-8")
    page_py = tmp_path / "reranker" / "ui" / "settings.py"
    source = page_py.read_text(encoding="utf-8")
    anchor = "    score_mode: ScoreMode = RAW_MODE\n"
    assert source.count(anchor) == 1
    page_py.write_text(source.replace(anchor, anchor + "    probe_knob: int = 15\n"), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", CARRY_REPORT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {
        "pipeline": 11, "cache_key": 12, "api": 14, "cli": 13, "page": 15, "ray": 11, "validated": "CrossEncoderSettings"
    }
