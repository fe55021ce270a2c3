"""The corpus/pipeline registry: discovery, uploads (validation keeps the previous corpora), examples, judgments."""

from __future__ import annotations

import threading
import zipfile

import pytest

from reranker.errors import DataError
from reranker.ui.state import SEED_QUERY, AppState, discover, example_queries, judgments_for
from tests.support import write_topics


@pytest.fixture()
def folders(tmp_path):
    bundled = tmp_path / "corpora"
    write_topics(bundled / "knowledge")
    write_topics(bundled / "other")
    (bundled / "notbeir").mkdir()
    data = tmp_path / "datasets"
    write_topics(data / "scifact")
    return bundled, data


def test_discovery_lists_default_first_then_data_dirs(folders):
    bundled, data = folders
    sources = discover(bundled, [data, data / "missing"])
    assert [s.label for s in sources] == ["knowledge (bundled)", "other (bundled)", "scifact (datasets/)"]
    assert [s.kind for s in sources] == ["bundled", "bundled", "data"]
    state = AppState(bundled_dir=bundled, data_dirs=[data])
    assert state.default_key == "bundled:knowledge" and len(state.choices()) == 3


def test_start_corpus_is_chosen_by_folder_name_or_key(folders, monkeypatch, caplog):
    bundled, data = folders
    by_name = AppState(bundled_dir=bundled, data_dirs=[data], start_corpus="scifact")
    assert by_name.default_key == f"data:{(data / 'scifact').resolve()}"
    assert AppState(bundled_dir=bundled, data_dirs=[data], start_corpus="bundled:other").default_key == "bundled:other"
    monkeypatch.setenv("RERANK_LENS_CORPUS", "other")
    assert AppState(bundled_dir=bundled, data_dirs=[data]).default_key == "bundled:other"
    unknown = AppState(bundled_dir=bundled, data_dirs=[data], start_corpus="nfcorpus")
    assert unknown.default_key == "bundled:knowledge"
    assert "start corpus 'nfcorpus' not found (available: knowledge, other, scifact)" in caplog.text


def test_examples_put_the_seed_query_first_and_judgments_match_loosely(folders):
    bundled, _data = folders
    dataset = AppState(bundled_dir=bundled, data_dirs=[]).dataset("bundled:knowledge")
    examples = example_queries(dataset)
    assert examples[0] == SEED_QUERY and len(examples) == 8
    assert judgments_for(dataset, "  what is TRANSFORMER attention mechanism ") == ("q-attention", {"attention": 2})
    assert judgments_for(dataset, "something else") is None


def test_upload_validates_and_keeps_previous_corpora(folders, tmp_path):
    bundled, data = folders
    state = AppState(bundled_dir=bundled, data_dirs=[data])
    before = state.choices()
    bad = tmp_path / "notes.jsonl"
    bad.write_text('{"_id": "1", "text": "fine"}\n{"_id": "2", "text": broken}\n')
    with pytest.raises(DataError) as info:
        state.add_upload(bad, "my notes.jsonl")
    assert "my notes.jsonl, line 2" in str(info.value) and str(tmp_path) not in str(info.value)
    assert (info.value.path, info.value.line) == ("my notes.jsonl", 2)  # fields, not only a sentence
    assert state.choices() == before
    (tmp_path / "x.pdf").write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        state.add_upload(tmp_path / "x.pdf", "x.pdf")

    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.md", "# Title A\nBody of a.")
        z.writestr("b.txt", "Plain text b.")
    source = state.add_upload(archive, "docs <1>.zip")
    assert source.kind == "upload" and "2 docs" in source.label and "<" not in source.label
    assert state.choices()[-1] == (source.label, source.key)
    assert len(state.dataset(source.key).corpus) == 2


def test_concurrent_first_use_builds_one_pipeline(folders, tmp_path):
    bundled, _data = folders
    state = AppState(bundled_dir=bundled, data_dirs=[], cache_dir=str(tmp_path / "emb"))
    built = []
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        built.append(state.pipeline("bundled:knowledge"))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 4 and all(p is built[0] for p in built)
    assert state.is_ready("bundled:knowledge") and not state.is_ready("bundled:other")
    with pytest.raises(DataError, match="unknown corpus"):
        state.pipeline("bundled:nope")


def test_only_the_latest_uploads_are_kept(folders, tmp_path):
    from reranker.ui.workspaces import WorkspacePolicy

    bundled, _data = folders
    state = AppState(bundled_dir=bundled, data_dirs=[], upload_dir=tmp_path / "uploads", policy=WorkspacePolicy(max_uploads=2))
    keys = []
    for i in range(3):
        file = tmp_path / f"f{i}.txt"
        file.write_text(f"Document number {i}.")
        keys.append(state.add_upload(file).key)
    remaining = [key for _, key in state.choices() if key.startswith("upload:")]
    assert remaining == keys[1:]
    assert state.choices()[0][1] == "bundled:knowledge"


def test_warm_up_indexes_the_default_corpus_in_the_background(folders, tmp_path):
    from reranker.pipeline import PipelineConfig
    from reranker.ui.state import warm_up

    bundled, _data = folders
    state = AppState(PipelineConfig(cross_encoder=None), bundled_dir=bundled, data_dirs=[], cache_dir=str(tmp_path / "e"))
    assert not state.is_ready("bundled:knowledge")
    warm_up(state).join(timeout=300)
    assert state.is_ready("bundled:knowledge") and not state.is_ready("bundled:other")


def test_a_running_warm_up_is_visible_and_can_be_waited_for(folders, tmp_path):
    from reranker.pipeline import PipelineConfig
    from reranker.ui.state import warm_up

    bundled, _data = folders
    state = AppState(PipelineConfig(cross_encoder=None), bundled_dir=bundled, data_dirs=[], cache_dir=str(tmp_path / "e"))
    key = "bundled:knowledge"
    assert not state.is_warming(key) and state.wait_warm(key, timeout=0)  # nothing to wait for
    done = state.mark_warming(key)
    assert state.is_warming(key) and not state.wait_warm(key, timeout=0.05) and not state.is_warming("bundled:other")
    done.set()
    assert not state.is_warming(key) and state.wait_warm(key, timeout=0)
    thread = warm_up(state)
    assert state.is_warming(key)  # marked before the thread runs: a page served at once sees it
    thread.join(timeout=300)
    assert not state.is_warming(key) and state.is_ready(key)
