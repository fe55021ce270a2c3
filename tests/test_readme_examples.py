"""The README's "Use it from code" examples run, offline, exactly as written.

The ```python blocks between `<!-- section:api -->` markers are executed in order in one
namespace (later blocks reuse earlier names), from the repository root.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import SEED_QUERY

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SECTION = re.compile(r"<!-- section:api -->(.*?)<!-- /section:api -->", re.S)
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def api_blocks() -> list[str]:
    match = SECTION.search(README.read_text(encoding="utf-8"))
    assert match, "README.md lost its <!-- section:api --> markers"
    return BLOCK.findall(match.group(1))


def test_the_section_covers_the_api_and_both_integrations():
    code = "\n".join(api_blocks())
    for needle in (SEED_QUERY, "Reranker(", "Pipeline(", "integrations.llama_index", "integrations.langchain"):
        assert needle in code
    assert 'load_dataset("corpora/knowledge")' in code


@pytest.fixture
def readme_environment(offline_auto, monkeypatch):
    """Run where the README says (repo root), with "auto" resolving offline and caches in a temporary folder."""
    monkeypatch.chdir(REPO)


def test_readme_api_examples_run(readme_environment, capsys):
    blocks = api_blocks()
    assert len(blocks) >= 5
    namespace: dict[str, object] = {"__name__": "readme"}
    for number, code in enumerate(blocks, start=1):
        try:
            exec(compile(code, f"README.md api block {number}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"README api block {number} failed: {type(exc).__name__}: {exc}\n{code}")
        printed = capsys.readouterr().out
        assert printed.strip(), f"README api block {number} printed nothing"
    assert namespace["result"].reranked  # the pipeline block went through a cross-encoder
