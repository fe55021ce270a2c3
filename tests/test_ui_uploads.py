"""Uploads in the app, as plain functions: a BEIR zip registered with its splits (its Evaluate figures equal
`python -m reranker eval` on the extracted folder), refused by name when unsafe or broken."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from reranker.cli import main
from reranker.cross_encoder import SCORE_CACHE
from reranker.errors import DataError
from reranker.evaluation.export import report_to_json
from reranker.ui import state as state_module
from reranker.ui.evaluate_tab import evaluate_view
from reranker.ui.render import corpus_info_html
from reranker.ui.settings import Settings
from reranker.ui.state import AppState
from tests.conftest import BUNDLED_MODEL, SEED_DOCUMENTS, SEED_QUERY
from tests.support import TOPICS, documents, write_beir, zip_folder

QUERIES = {
    "q1": SEED_QUERY,
    "q2": "recurrent networks with a hidden state",
    "q3": "cost of self-attention on long inputs",
    "q4": "what do transformers compute with a softmax",
    "q5": "letting a model focus on the relevant parts of its input",
    "q6": "pretrained encoder layers with masked language modelling",
    "q7": "what causes ocean tides",
    "q8": "proof of work",
}
QRELS = {
    "q1": {"attention-def": 2, "attention-cost": 1, "bert": 1, "attention": 1},
    "q2": {"rnn": 2},
    "q3": {"attention-cost": 2, "attention-def": 1},
    "q4": {"attention-def": 2, "attention": 2},
    "q5": {"attention-general": 2},
    "q6": {"bert": 2},
    "q7": {"tides": 2},
    "q8": {"bitcoin": 1},
}
DOC_IDS = [d.id for d in SEED_DOCUMENTS] + list(TOPICS)
CE = f"ce=rerank:{BUNDLED_MODEL}@depth=5"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RERANK_LENS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def beir_zip(tmp_path_factory) -> Path:
    """A 13-document BEIR dataset with graded judgments, zipped in one top folder as BEIR ships them."""
    root = tmp_path_factory.mktemp("beir")
    folder = write_beir(root / "mini", [*SEED_DOCUMENTS, *documents(TOPICS)], QUERIES, QRELS)
    return zip_folder(folder, root / "mini.zip", top="mini")


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> AppState:
    root = tmp_path_factory.mktemp("app")
    return AppState(bundled_dir=root / "none", data_dirs=[], cache_dir=str(root / "emb"), upload_dir=root / "uploads")


@pytest.fixture(scope="module")
def key(state, beir_zip) -> str:
    return state.add_upload(beir_zip, "mini.zip").key


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------- BEIR zips


def test_a_beir_zip_becomes_a_corpus_with_its_splits_in_its_own_folder(state, key, beir_zip):
    source = state.source(key)
    assert source.kind == "upload" and source.label == "mini (upload, 13 docs, judged: test)"
    folder = Path(source.path)
    assert folder.parent == state.upload_dir and folder.name == f"mini-{key.split(':')[1]}"
    assert sorted(p.name for p in folder.iterdir()) == ["corpus.jsonl", "qrels", "queries.jsonl"]
    dataset = state.dataset(key)
    assert len(dataset.corpus) == 13 and list(dataset.qrels) == ["test"] and len(dataset.split_queries("test")) == 8
    assert "relevance judgments for <b>8</b> queries (test)" in corpus_info_html(dataset)
    assert state.add_upload(beir_zip, "mini.zip").key == key  # the same zip again: the same corpus
    # After a restart the upload is found again in the upload folder, with the same documents.
    again = AppState(bundled_dir=state.bundled_dir, data_dirs=[], upload_dir=state.upload_dir)
    assert (source.label.split(" (")[0] + " (upload, BEIR)", key) in again.choices()
    assert again.dataset(key).corpus.fingerprint == dataset.corpus.fingerprint


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": {"../evil.txt": b"x"}}, "bad.zip: refused: member '../evil.txt' climbs out of the archive's folder"),
        ({"skip": ("queries.jsonl",)}, "bad.zip: mini/qrels/ has judgments but there is no mini/queries.jsonl"),
        ({"corpus": '{"_id": "a", "text": "fine"}\n{"_id": "b", "text": broken}\n'},
         "bad.zip:mini/corpus.jsonl, line 2: broken JSON"),
    ],
)
def test_a_bad_beir_zip_is_refused_by_name_and_nothing_is_lost(state, key, tmp_path, change, message):
    folder = write_beir(tmp_path / "src", documents(TOPICS), {"q": "volcano"}, {"q": {"volcano": 1}})
    if "corpus" in change:
        (folder / "corpus.jsonl").write_text(change["corpus"])
    archive = zip_folder(folder, tmp_path / "bad.zip", top="mini", extra=change.get("extra"), skip=change.get("skip", ()))
    choices, folders = state.choices(), sorted(state.upload_dir.iterdir())
    with pytest.raises(DataError) as info:
        state.add_upload(archive, "bad.zip")
    assert str(info.value).startswith(message)
    assert str(state.upload_dir) not in str(info.value) and str(tmp_path) not in str(info.value)
    assert state.choices() == choices and sorted(state.upload_dir.iterdir()) == folders
    assert len(state.dataset(key).corpus) == 13  # the earlier upload is untouched


def test_forgotten_uploads_take_their_folders_with_them(tmp_path, beir_zip, monkeypatch):
    monkeypatch.setattr(state_module, "MAX_UPLOADS", 1)
    state = AppState(bundled_dir=tmp_path / "none", data_dirs=[], upload_dir=tmp_path / "uploads")
    first = state.add_upload(beir_zip, "mini.zip")
    second = state.add_upload(write(tmp_path / "notes.txt", "A single note."), "notes.txt")
    assert [key for _, key in state.choices()] == [second.key]
    assert not Path(first.path).exists() and list((tmp_path / "uploads").iterdir()) == []


def test_evaluate_on_an_uploaded_beir_zip_equals_the_cli_on_its_folder(state, key, capsys):
    specs = ["bm25", "fused", CE]
    SCORE_CACHE.clear()
    view = evaluate_view(state, key, "test", specs, "fused", "student", 0, Settings().overrides())
    SCORE_CACHE.clear()
    code = main(["eval", "--dataset", state.source(key).path, "--split", "test", "--compare", *specs, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    cli = json.loads(out)
    page = report_to_json(view.report)
    assert cli["queries"] == page["queries"] == 8 and cli["baseline"] == page["baseline"] == "fused"
    for name in ("bm25", "fused", "ce"):
        assert page["configurations"][name]["metrics"] == cli["configurations"][name]["metrics"], name
        assert page["configurations"][name]["significance"] == cli["configurations"][name]["significance"], name
    assert len(set(cli["configurations"]["ce"]["metrics"].values())) > 1  # not a trivially perfect ranking
    for value in view.report.get("ce").means.values():  # and the page's table shows those figures
        assert f"{value:.4f}" in view.table


def test_a_zip_without_beir_files_is_still_read_as_documents(state, tmp_path):
    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.md", "# Title A\nBody of a.")
    source = state.add_upload(archive, "docs.zip")
    assert source.label == "docs (upload, 1 docs)" and not state.dataset(source.key).qrels
