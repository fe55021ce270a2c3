"""The README's "Use it from code" examples run, offline, exactly as written.

The ```python blocks between `<!-- section:api -->` markers are executed in order in one
namespace (later blocks reuse earlier names), from the repository root.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import BUNDLED_MODEL, SEED_QUERY

from reranker.models import PROJECT_MODELS, resolve_model
from reranker.pipeline import default_cross_encoder, resolve_cross_encoder_spec

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
def readme_environment(monkeypatch, tmp_path):
    """Run where the README says (repo root), with embeddings cached in a temporary folder.

    "auto" must resolve to a cross-encoder offline: the hub default when cached, else the
    project's fine-tuned model. Where neither exists yet, the bundled model is registered as the
    project model for this test, the way the fine-tuned one registers itself.
    """
    monkeypatch.setenv("RERANK_LENS_CACHE", str(tmp_path / "cache"))
    default_cross_encoder.cache_clear()
    if resolve_cross_encoder_spec("auto") is None:
        bundled = resolve_model(BUNDLED_MODEL).path
        monkeypatch.setitem(PROJECT_MODELS, "stand-in-finetuned", lambda: bundled)
        default_cross_encoder.cache_clear()
    monkeypatch.chdir(REPO)
    yield
    default_cross_encoder.cache_clear()


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
