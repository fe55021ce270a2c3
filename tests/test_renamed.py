"""The old spellings of renamed settings work for one release, each with a DeprecationWarning naming the new one."""

from __future__ import annotations

import dataclasses

import pytest

from reranker.errors import ConfigError, DataError
from reranker.pipeline import PipelineConfig


def test_pipeline_config_takes_and_reads_interpolation_as_blend():
    with pytest.warns(DeprecationWarning, match="'interpolation' is now 'blend'"):
        old = PipelineConfig(interpolation=0.3)
    assert old == PipelineConfig(blend=0.3)
    with pytest.warns(DeprecationWarning, match="'interpolation' is now 'blend'"):
        replaced = dataclasses.replace(PipelineConfig(blend=0.1), interpolation=0.4)
    assert replaced.blend == 0.4  # the old name given wins over the config's own blend that replace passes on
    with pytest.warns(DeprecationWarning, match="PipelineConfig.blend"):
        assert PipelineConfig(blend=0.2).interpolation == 0.2
    assert "interpolation" not in {f.name for f in dataclasses.fields(PipelineConfig)}


def test_the_new_names_do_not_warn(recwarn):
    PipelineConfig(blend=0.2, rerank_depth=5, latency_budget_ms=100.0).validate()
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_errors_keep_their_fields():
    with pytest.raises(ConfigError) as refused:
        PipelineConfig(blend=1.5).validate()
    assert refused.value.field == "blend"
    error = DataError("bad JSON", path="/tmp/upload-1234/corpus.jsonl", line=7)
    renamed = error.naming("corpus.jsonl")
    assert (renamed.path, renamed.line, renamed.detail) == ("corpus.jsonl", 7, "bad JSON")
    assert str(renamed) == "corpus.jsonl, line 7: bad JSON"
