"""The public API's docstrings: Google style (Args, Returns, Raises, Example) as sentence-transformers
writes them, and every example runs offline as written (doctest)."""

from __future__ import annotations

import doctest
import inspect

import pytest

from reranker import Pipeline, Reranker, RerankStages, rerank
from reranker.integrations import langchain, llama_index
from reranker.pipeline import PipelineConfig

PUBLIC = {
    "Pipeline.search": Pipeline.search,
    "RerankStages.rerank": RerankStages.rerank,
    "Reranker": Reranker,
    "Reranker.rerank": Reranker.rerank,
    "Reranker.explain": Reranker.explain,
    "rerank": rerank,
    "llama_index.CrossEncoderRerank": llama_index.CrossEncoderRerank,
    "llama_index.CorpusBM25Retriever": llama_index.CorpusBM25Retriever,
    "langchain.CrossEncoderCompressor": langchain.CrossEncoderCompressor,
    "langchain.CompressDocuments": langchain.CrossEncoderCompressor.compress_documents,
    "langchain.CorpusBM25Retriever": langchain.CorpusBM25Retriever,
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_docstrings_have_the_google_sections(name):
    doc = inspect.getdoc(PUBLIC[name]) or ""
    assert "Args:" in doc, name
    callable_part = name.endswith(("search", "rerank", "explain", "Documents")) or name == "rerank"
    if callable_part:
        assert "Returns:" in doc and "Raises:" in doc, name
    if name != "langchain.CompressDocuments":
        assert "Example:" in doc and ">>> " in doc, name


def test_every_pipeline_setting_is_documented():
    from reranker.commands.arguments import field_docs

    documented = field_docs(PipelineConfig)
    missing = [f for f in PipelineConfig.__dataclass_fields__ if not documented.get(f)]
    assert not missing, f"document these PipelineConfig fields under Attributes: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in sorted(PUBLIC) if ">>> " in (inspect.getdoc(PUBLIC[n]) or "")])
def test_docstring_examples_run(name, offline_auto):
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(PUBLIC[name], name, globs={}) if t.examples]
    assert tests, name
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
