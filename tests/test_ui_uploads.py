"""Uploads in the app, as plain functions: a BEIR zip registered with its splits (its Evaluate figures equal
`python -m reranker eval` on the extracted folder), and a TREC run that becomes a corpus's before list in
Search, Compare, the HTML snapshot and the comparison on the current query, and the baseline in Evaluate
(its figures equal `rerank-run`'s), refused with file and line."""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path

import pytest

from reranker.cli import main
from reranker.errors import ConfigError, DataError
from reranker.evaluation.export import report_to_json
from reranker.runs import format_run
from reranker.ui.compare_tab import compare_view
from reranker.ui.evaluate_tab import EvaluationInputs, evaluate_view, query_comparison_view, snapshot_file
from reranker.ui.kept_runs import kept_run_folder
from reranker.ui.render import corpus_info_html
from reranker.ui.search_tab import grade_view, search_view
from reranker.ui.settings import Settings
from reranker.ui.state import AppState
from reranker.ui.workspaces import WorkspacePolicy
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
CE = f"ce=rerank:{BUNDLED_MODEL}@rerank_depth=5"


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


def run_text(queries=("q1", "q2", "q3", "q4", "q5", "q6")) -> str:
    """A stand-in production retriever: every document for each query, the judged ones from rank 4 on."""
    run = {}
    for qid in queries:
        judged = list(QRELS[qid])
        order = [d for d in DOC_IDS if d not in judged][:3] + judged + [d for d in DOC_IDS if d not in judged][3:]
        run[qid] = {doc: float(len(order) - i) for i, doc in enumerate(order)}
    return format_run(run, "prod")


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
    assert info.value.path.startswith("bad.zip") and str(tmp_path) not in info.value.path
    assert str(state.upload_dir) not in str(info.value) and str(tmp_path) not in str(info.value)
    assert state.choices() == choices and sorted(state.upload_dir.iterdir()) == folders
    assert len(state.dataset(key).corpus) == 13  # the earlier upload is untouched


def test_forgotten_uploads_take_their_folders_and_kept_runs_with_them(tmp_path, beir_zip):
    uploads = tmp_path / "uploads"
    state = AppState(bundled_dir=tmp_path / "none", data_dirs=[], upload_dir=uploads, policy=WorkspacePolicy(max_uploads=1))
    first = state.add_upload(beir_zip, "mini.zip")
    state.load_run(first.key, write(tmp_path / "r.trec", run_text()), "prod.trec")
    assert (kept_run_folder(uploads, first.key) / "run.json").is_file()
    added = state.upload(write(tmp_path / "notes.txt", "A single note."), "notes.txt")
    assert [key for _, key in state.choices()] == [added.source.key]
    assert added.forgotten == (first.label,) and f"forgot: {first.label}" in added.message()
    # The documents are kept as uploaded (so a restart finds them); the forgotten zip's folder and run are gone.
    kept = sorted(str(p.relative_to(uploads)) for p in uploads.rglob("*") if p.is_file())
    folder = f"notes-{added.source.key.split(':')[1]}"
    assert kept == [f"{folder}/documents.txt", f"{folder}/upload.json"]
    assert not Path(first.path).exists()
    assert restarted(state).choices() == [("notes (upload, 1 docs)", added.source.key)]


def test_evaluate_on_an_uploaded_beir_zip_equals_the_cli_on_its_folder(state, key, capsys):
    specs = ["bm25", "fused", CE]
    state.pipeline(key).score_cache.clear()  # the page scores every pair, as the CLI (a pipeline of its own) does
    view = evaluate_view(state, EvaluationInputs(key, "test", specs, "fused", "student", 0, Settings().overrides()))
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


# ---------------------------------------------------------------- runs


@pytest.fixture()
def with_run(state, key, tmp_path):
    loaded = state.load_run(key, write(tmp_path / "tmp123.trec", run_text()), "prod run.trec")
    yield loaded
    state.drop_run(key)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"q1 Q0 bert 1 2.0 x\nq1 Q0 nope 2 1.0 x\n", "prod.trec, line 2: document 'nope' is not in the dataset's corpus"),
        (b"q1 Q0 bert 1 2.0 x\nq1 Q0 rnn 1 1.0 x\n", "prod.trec, line 2: query q1 has rank 1 twice (bert at line 1, rnn here)"),
        (b"q1 Q0 bert 1 2.0 x\nq42 Q0 rnn 1 1.0 x\n", "prod.trec, line 2: query 'q42' is not in the dataset's queries file"),
        (b"q1 Q0 bert 1 2.0\n", "prod.trec, line 1: expected 6 fields"),
        (b"\x89PNG\x00\xff", "prod.trec: not UTF-8 text"),
    ],
)
def test_a_bad_run_is_refused_with_file_and_line_and_the_previous_run_stays(state, key, with_run, tmp_path, data, message):
    path = tmp_path / "upload-4f2a.bin"
    path.write_bytes(data)
    with pytest.raises(DataError) as info:
        state.load_run(key, path, "prod.trec")
    assert str(info.value).startswith(message) and str(tmp_path) not in str(info.value)
    assert info.value.path == "prod.trec" and str(info.value.line or "") in message  # fields, not only a sentence
    assert state.run_for(key) is with_run


def test_a_corpus_without_queries_cannot_take_a_run(state, tmp_path):
    plain = state.add_upload(write(tmp_path / "notes.md", "# Notes\nSome text."), "notes.md")
    with pytest.raises(DataError, match=r"notes\.md: notes \(upload, 1 docs\) has no queries file"):
        state.load_run(plain.key, write(tmp_path / "r.trec", "q1 Q0 notes 1 1.0 x\n"), "notes.md")
    assert state.run_for(plain.key) is None


def restarted(state: AppState) -> AppState:
    """A fresh AppState over the same folders: the app after a server restart."""
    return AppState(bundled_dir=state.bundled_dir, data_dirs=state.data_dirs, cache_dir=state.cache_dir,
                    upload_dir=state.upload_dir)


def test_an_uploaded_run_is_the_before_list_again_after_a_restart_until_it_is_dropped(state, key, with_run, tmp_path):
    again = restarted(state)
    assert again.run_for(key) == with_run
    before = again.before_list(key, QUERIES["q4"])
    assert before.qid == "q4" and before.heading == "Before: uploaded run prod run.trec"
    kept = kept_run_folder(state.upload_dir, key)
    assert kept.parent == state.upload_dir / "runs"
    assert sorted(p.name for p in kept.iterdir()) == [f"run-{with_run.digest}.trec", "run.json"]
    # A new run replaces the kept one, file and all.
    newer = state.load_run(key, write(tmp_path / "newer.trec", run_text(("q1", "q2"))), "newer.trec")
    assert restarted(state).run_for(key) == newer
    assert sorted(p.name for p in kept.iterdir()) == [f"run-{newer.digest}.trec", "run.json"]
    # Dropping it deletes the kept copy: after the next restart the before list is fusion again.
    state.drop_run(key)
    assert not kept.exists()
    assert restarted(state).run_for(key) is None and restarted(state).before_list(key, QUERIES["q4"]).loaded is None


@pytest.fixture()
def odd_corpus(tmp_path) -> tuple[AppState, str]:
    """A BEIR folder in a data directory whose name holds ':' and a leading '..', so its key does too."""
    data = tmp_path / "data"
    write_beir(data / "..odd: name", [*SEED_DOCUMENTS, *documents(TOPICS)], QUERIES, QRELS)
    state = AppState(bundled_dir=tmp_path / "none", data_dirs=[data], upload_dir=tmp_path / "uploads")
    (key,) = [key for _, key in state.choices()]
    assert key.startswith("data:/") and key.endswith("/..odd: name")
    return state, key


def test_a_run_kept_for_a_key_with_odd_characters_stays_inside_the_upload_folder(odd_corpus, tmp_path):
    state, key = odd_corpus
    loaded = state.load_run(key, write(tmp_path / "r.trec", run_text()), "../../prod:run.trec")
    runs = (state.upload_dir / "runs").resolve()
    written = [p.resolve() for p in state.upload_dir.rglob("*") if p.is_file()]
    assert len(written) == 2 and all(p.parent.parent == runs for p in written)
    assert restarted(state).run_for(key) == loaded
    for hostile in ("../../escape", "upload:../..", "data:/etc/passwd", "a\\b:c", ""):
        folder = kept_run_folder(state.upload_dir, hostile)
        assert folder.resolve().parent == runs and re.fullmatch(r"[0-9a-f]{20}", folder.name)


def test_a_kept_run_that_no_longer_fits_its_corpus_is_set_aside_and_the_corpus_still_works(odd_corpus, tmp_path, caplog):
    state, key = odd_corpus
    state.load_run(key, write(tmp_path / "r.trec", run_text()), "prod.trec")
    # The corpus changes while the server is down: query q6, which the run ranks, is gone.
    folder = Path(state.source(key).path)
    write_beir(folder, [*SEED_DOCUMENTS, *documents(TOPICS)], {q: t for q, t in QUERIES.items() if q != "q6"},
               {q: g for q, g in QRELS.items() if q != "q6"})
    again = restarted(state)
    with caplog.at_level(logging.WARNING, logger="reranker.ui.state"):
        assert again.run_for(key) is None
    assert "the run kept for" in caplog.text and "no longer fits the corpus" in caplog.text
    assert "prod.trec, line 66: query 'q6' is not in the dataset's queries file" in caplog.text
    assert again.before_list(key, QUERIES["q4"]).loaded is None
    dataset = again.dataset(key)
    assert len(dataset.corpus) == 13 and len(dataset.queries) == 7 and "before list" not in corpus_info_html(dataset)
    kept = kept_run_folder(state.upload_dir, key)
    assert not kept.exists() and (kept.with_name(kept.name + ".unmatched") / "run.json").is_file()  # not lost
    caplog.clear()
    assert restarted(state).run_for(key) is None and "no longer fits" not in caplog.text  # said once, not at every start


def before_ids(html: str) -> list[str]:
    return re.findall(r'data-doc="([^"]+)"', html.split('rl-col-after"', 1)[0])


def test_search_reranks_the_runs_list_for_a_run_query_and_says_so(state, key, with_run):
    settings = Settings(cross_encoder=BUNDLED_MODEL, rerank_depth=5, top_n=5)
    view = search_view(state, key, "  what do TRANSFORMERS compute with a softmax ", settings)
    expected = [e.doc_id for e in with_run.run.queries["q4"]][:5]
    assert view.result.before.stage == "run" and before_ids(view.lists) == expected
    assert "Before: uploaded run prod run.trec" in view.lists
    assert "before: uploaded run prod run.trec (its list for this query)" in view.notes
    assert list(view.result.stages) == ["run", "reranked"] and "nDCG@10" in view.summary
    assert "Uploaded run" in str(view.journey.to_dict()["data"][0]["x"])

    other = search_view(state, key, QUERIES["q7"], settings)  # judged, but not in the run: fusion as usual
    assert other.result.before.stage == "fused" and "Before: Fused (RRF)" in other.lists
    assert "has no list for this query" in other.notes

    state.drop_run(key)
    plain = search_view(state, key, QUERIES["q4"], settings)
    assert plain.result.before.stage == "fused" and "uploaded run" not in plain.notes + plain.lists


def test_evaluate_takes_the_run_as_baseline_and_equals_rerank_run(state, key, with_run, tmp_path, capsys):
    state.pipeline(key).score_cache.clear()  # the page scores every pair, as rerank-run (stages of its own) does
    view = evaluate_view(state, EvaluationInputs(key, "test", ["fused", CE], "fused", "student", 0, Settings().overrides()))
    page = report_to_json(view.report)
    assert list(page["configurations"]) == ["run", "fused", "ce"] and page["baseline"] == "run"
    assert page["queries"] == 6  # the run ranks six of the eight judged queries
    assert "Before reranking: the uploaded run prod run.trec" in view.notes
    assert "2 judged queries of split &#x27;test&#x27; are not in the run" in view.notes
    assert "run <small>(baseline)</small>" in view.table and "vs run:" in view.lists
    assert view.figure.layout.xaxis.title.text == "ndcg@10 run"

    trec = write(tmp_path / "prod.trec", run_text())
    code = main([
        "rerank-run", "--dataset", state.source(key).path, "--run", str(trec), "--out", str(tmp_path / "out.trec"),
        "--cross-encoder", BUNDLED_MODEL, "--rerank-depth", "5", "--json",
    ])
    out, err = capsys.readouterr()
    assert code == 0, err
    cli = json.loads(out)["evaluation"]["configurations"]
    assert page["configurations"]["run"]["metrics"] == cli["run"]["metrics"]
    assert page["configurations"]["ce"]["metrics"] == cli["reranked"]["metrics"]
    assert page["configurations"]["ce"]["significance"] == cli["reranked"]["significance"]


def test_evaluate_with_a_run_explains_what_cannot_run(state, key, with_run):
    with pytest.raises(ConfigError, match="pick at most 3 others"):
        evaluate_view(state, EvaluationInputs(key, "test", ["bm25", "dense", "fused", "auto"], "fused", "student", 0, {}))
    state.drop_run(key)
    view = evaluate_view(state, EvaluationInputs(key, "test", ["run", "fused"], "fused", "student", 0, {}))
    assert "no TREC run is loaded for this corpus" in view.table


def test_a_zip_without_beir_files_is_still_read_as_documents(state, tmp_path):
    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.md", "# Title A\nBody of a.")
    source = state.add_upload(archive, "docs.zip")
    assert source.label == "docs (upload, 1 docs)" and not state.dataset(source.key).qrels


def test_grading_a_run_query_keeps_the_runs_heading(state, key, with_run):
    """Judging redraws the lists without searching again: they still say where the before list came from.
    (The grade equals the shipped one, so the figures of the tests above do not depend on the order.)"""
    settings = Settings(cross_encoder="none", top_n=5)
    view = search_view(state, key, QUERIES["q4"], settings)
    _, lists = grade_view(state, view.view, "attention", 2)
    assert "Before: uploaded run prod run.trec" in lists and "After: no cross-encoder ran (same as before)" in lists


def snapshot_lists(page: str) -> tuple[str, list[str], list[str]]:
    """A snapshot's before heading and the document ids of its before and after columns."""
    before, after = page.split('<section id="final">', 1)
    before = before.split('<section id="fused">', 1)[1]
    ids = r'<tr class="[^"]*" data-doc="([^"]+)"'
    return re.search(r"<h3>([^<]+)</h3>", before).group(1), re.findall(ids, before), re.findall(ids, after)


def test_the_snapshot_of_a_run_query_shows_the_runs_list_as_search_does(state, key, with_run):
    settings = Settings(cross_encoder=BUNDLED_MODEL, rerank_depth=5, top_n=5)
    search = search_view(state, key, QUERIES["q4"], settings)
    page = Path(snapshot_file(state, key, QUERIES["q4"], settings)).read_text(encoding="utf-8")
    heading, before, after = snapshot_lists(page)
    assert heading == "Before: uploaded run prod run.trec"
    assert before == [e.doc_id for e in with_run.run.queries["q4"]][:5] == before_ids(search.lists)
    assert after == search.result.after.doc_ids()[:5]
    assert "before: uploaded run prod run.trec (its list for this query)" in page

    other = Path(snapshot_file(state, key, QUERIES["q7"], settings)).read_text(encoding="utf-8")
    assert snapshot_lists(other)[0] == "Before: fused (BM25 + dense, RRF)" and "has no list for this query" in other


def comparison_columns(html: str) -> list[list[str]]:
    """The document ids of each configuration's column in `query_comparison_html`, best first."""
    rows = [re.findall(r"<td>.*?<div class='rl-eval-model'>([^<]+)</div></td>", row)
            for row in re.findall(r"<tr><th>#\d+</th>(.*?)</tr>", html)]
    return [list(column) for column in zip(*rows, strict=True)]


def test_compare_on_the_current_query_reranks_the_runs_list_as_search_does(state, key, with_run):
    html = query_comparison_view(state, key, QUERIES["q4"], ["run", CE, "", ""], Settings())
    run, reranked = comparison_columns(html)
    search = search_view(state, key, QUERIES["q4"], Settings(cross_encoder=BUNDLED_MODEL, rerank_depth=5))
    assert run == [e.doc_id for e in with_run.run.queries["q4"]][:5]
    assert reranked == search.result.after.doc_ids()[:5]
    assert "before: uploaded run prod run.trec (its list for this query)" in html and "could not run" not in html

    other = query_comparison_view(state, key, QUERIES["q7"], ["fused", CE], Settings())
    fused, _ = comparison_columns(other)
    assert fused == search_view(state, key, QUERIES["q7"], Settings(cross_encoder="none")).result.before.doc_ids()[:5]
    assert "has no list for this query" in other
    with pytest.raises(ConfigError, match=r"uploaded run prod run\.trec has no list for this query"):
        query_comparison_view(state, key, QUERIES["q7"], ["run", CE], Settings())


def test_compare_says_its_cross_encoders_rerank_the_runs_list(state, key, with_run):
    settings = Settings(rerank_depth=5, top_n=5)
    view = compare_view(state, key, QUERIES["q4"], "Cross-encoders", BUNDLED_MODEL, "all-MiniLM-L6-v2", settings)
    assert "before: uploaded run prod run.trec (its list for this query)" in view.agreement
    dense = compare_view(state, key, QUERIES["q4"], "Bi-encoders", "all-MiniLM-L6-v2", BUNDLED_MODEL, settings)
    assert "uploaded run" not in dense.agreement  # two bi-encoders compare their own dense lists
