"""The code examples of the README and of docs/api.md run, offline, exactly as written.

The ```python blocks between `<!-- section:api -->` markers in docs/api.md are executed in order in one
namespace (later blocks reuse earlier names), from the repository root; so is the README's quick start
(between `<!-- section:quickstart -->` markers), on its own.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import SEED_QUERY

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
API_DOC = REPO / "docs" / "api.md"
SECTION = re.compile(r"<!-- section:api -->(.*?)<!-- /section:api -->", re.S)
QUICKSTART = re.compile(r"<!-- section:quickstart -->(.*?)<!-- /section:quickstart -->", re.S)
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def api_blocks() -> list[str]:
    match = SECTION.search(API_DOC.read_text(encoding="utf-8"))
    assert match, "docs/api.md lost its <!-- section:api --> markers"
    return BLOCK.findall(match.group(1))


def quickstart_blocks() -> list[str]:
    match = QUICKSTART.search(README.read_text(encoding="utf-8"))
    assert match, "README.md lost its <!-- section:quickstart --> markers"
    return BLOCK.findall(match.group(1))


def test_the_section_covers_the_api_and_both_integrations():
    code = "\n".join(api_blocks())
    for needle in (SEED_QUERY, "Reranker(", "Pipeline(", "integrations.llama_index", "integrations.langchain"):
        assert needle in code
    assert 'load_dataset("corpora/knowledge")' in code


@pytest.fixture
def readme_environment(offline_auto, monkeypatch):
    """Run where the docs say (repo root), with "auto" resolving offline and caches in a temporary folder."""
    monkeypatch.chdir(REPO)


def run_blocks(blocks: list[str], source: str, capsys) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": "readme"}
    for number, code in enumerate(blocks, start=1):
        try:
            exec(compile(code, f"{source} block {number}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"{source} block {number} failed: {type(exc).__name__}: {exc}\n{code}")
        printed = capsys.readouterr().out
        assert printed.strip(), f"{source} block {number} printed nothing"
    return namespace


def test_readme_quickstart_runs(readme_environment, capsys):
    blocks = quickstart_blocks()
    assert len(blocks) == 1 and SEED_QUERY in blocks[0]
    namespace = run_blocks(blocks, "README.md quickstart", capsys)
    assert len(namespace["result"]) == 1


def test_api_doc_examples_run(readme_environment, capsys):
    blocks = api_blocks()
    assert len(blocks) >= 5
    namespace = run_blocks(blocks, "docs/api.md", capsys)
    assert namespace["result"].reranked  # the pipeline block went through a cross-encoder
