"""Judgments made in the app: the overlay files, merging over shipped qrels, uploads, removing grades, and
writers that run at once (threads, processes) losing nothing."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from reranker.corpus import load_dataset
from reranker.errors import ConfigError, DataError
from reranker.judgments import (
    OVERLAY_SPLIT,
    JudgmentStore,
    ListedJudgment,
    Overlay,
    format_qrels,
    judgments_root,
    listed_judgments,
    merge_files,
    merged_texts,
    new_query_id,
    overlay_name,
    overlay_texts,
    parse_qrels,
    query_judgments,
    remove_judgments,
    unjudged,
    with_overlay,
)
from reranker.ui.state import AppState
from tests.support import ranked, write_topics

WRITERS = 4
GRADES_EACH = 25


@pytest.fixture()
def topics(tmp_path):
    """The eight-topic corpus as a bundled corpus (one judged test query per topic)."""
    return write_topics(tmp_path / "corpora" / "knowledge")


def test_the_judgments_folder_is_the_environment_s_or_the_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("RERANK_LENS_JUDGMENTS", str(tmp_path / "j"))
    assert judgments_root() == tmp_path / "j"
    monkeypatch.delenv("RERANK_LENS_JUDGMENTS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert judgments_root() == tmp_path / "xdg" / "rerank-lens" / "judgments"


def test_overlay_names_are_stable_and_safe():
    assert overlay_name("bundled:knowledge") == "bundled-knowledge"
    assert overlay_name("upload:0123abcd") == "upload-0123abcd"
    data = overlay_name("data:/srv/datasets/scifact")
    assert data.startswith("scifact-") and data == overlay_name("data:/srv/datasets/scifact")
    assert data != overlay_name("data:/other/scifact")  # same folder name, another corpus
    assert "/" not in overlay_name("upload:../../etc")


def test_record_writes_beir_qrels_and_the_last_grade_wins(tmp_path):
    store = JudgmentStore(tmp_path / "overlay")
    _, report = store.record([("q1", "d1", 2), ("q1", "d2", 0)])
    assert (report.added, report.changed) == (2, 0)
    _, report = store.record([("q1", "d1", 3)])
    assert (report.added, report.changed) == (0, 1)
    assert overlay_texts(store.load())[0] == "query-id\tcorpus-id\tscore\nq1\td1\t3\nq1\td2\t0\n"
    assert [(e.doc, e.grade, e.judge) for e in store.history()] == [("d1", 2, "anonymous"), ("d2", 0, "anonymous"),
                                                                   ("d1", 3, "anonymous")]  # the history stays
    assert store.load().qrels == {"q1": {"d1": 3, "d2": 0}} and len(store.load()) == 2
    store.record([("u-x", "d1", 1)], {"u-x": "a new query"})
    assert store.load().queries == {"u-x": "a new query"}
    with pytest.raises(DataError, match="tab"):
        store.record([("q\t1", "d1", 1)])


def _write_many(folder: str, writer: int) -> None:
    store = JudgmentStore(folder)
    for i in range(GRADES_EACH):
        store.record([(f"q{writer}", f"d{i}", i % 4), ("shared", "doc", writer)])


def _in_threads(writer, folder) -> None:
    """`writer(folder, w)` for each of WRITERS writers at once, until all are done."""
    threads = [threading.Thread(target=writer, args=(str(folder), w)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_threads_lose_nothing(tmp_path):
    folder = tmp_path / "overlay"
    _in_threads(_write_many, folder)
    qrels = JudgmentStore(folder).load().qrels
    for w in range(WRITERS):
        assert qrels[f"q{w}"] == {f"d{i}": i % 4 for i in range(GRADES_EACH)}
    assert qrels["shared"]["doc"] in range(WRITERS)  # one of the writers' last grade, whole
    assert not list(folder.glob(".*.tmp"))  # no temporary file left behind


def test_concurrent_processes_lose_nothing(tmp_path):
    folder = tmp_path / "overlay"
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_write_many, args=(str(folder), w)) for w in range(WRITERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0] * WRITERS
    qrels = JudgmentStore(folder).load().qrels
    assert sum(len(docs) for q, docs in qrels.items() if q != "shared") == WRITERS * GRADES_EACH
    for w in range(WRITERS):
        assert qrels[f"q{w}"] == {f"d{i}": i % 4 for i in range(GRADES_EACH)}


def test_with_overlay_merges_over_shipped_qrels_and_routes_new_queries_to_test(topics):
    dataset = load_dataset(topics)
    new = new_query_id("volcanic ash clouds?")
    overlay = Overlay(
        qrels={
            "q-volcano": {"volcano": 0, "tides": 1},  # replaces a shipped grade, adds one
            new: {"volcano": 3, "no-such-doc": 2},
            "q-without-text": {"chess": 1},
        },
        queries={new: "volcanic ash clouds?"},
        path="/overlay",
    )
    merged, used = with_overlay(dataset, overlay)
    assert used == 3
    assert merged.qrels["test"]["q-volcano"] == {"volcano": 0, "tides": 1}
    assert merged.qrels[OVERLAY_SPLIT][new] == {"volcano": 3} and merged.queries[new] == "volcanic ash clouds?"
    assert "q-without-text" not in merged.qrels["test"]
    assert any("3 overlay judgments" in p and "/overlay" in p for p in merged.problems)
    assert any("1 overlay judgments for unknown documents and 1 for queries with no text" in p for p in merged.problems)
    assert dataset.qrels["test"]["q-volcano"] == {"volcano": 2}  # the shipped dataset is untouched
    assert with_overlay(dataset, Overlay()) == (dataset, 0)


def test_query_judgments_finds_shipped_and_new_queries(topics):
    dataset = load_dataset(topics)
    assert query_judgments(dataset, "Where do emperor penguins BREED?") == ("q-penguin", {"penguin": 2})
    qid, grades = query_judgments(dataset, "something nobody asked")
    assert qid == new_query_id("Something  nobody asked.") and grades == {}


def test_parse_qrels_reads_beir_and_trec_and_names_bad_lines():
    assert parse_qrels(b"query-id\tcorpus-id\tscore\nq1\td1\t2\n", "a.tsv") == [("q1", "d1", 2)]
    assert parse_qrels(b"q1 0 d1 3\nq2 0 d2 0\n", "a.txt") == [("q1", "d1", 3), ("q2", "d2", 0)]
    with pytest.raises(DataError, match=r"a.tsv, line 2: score 'high' is not an integer"):
        parse_qrels(b"q1\td1\t1\nq1\td2\thigh\n", "a.tsv")
    with pytest.raises(DataError, match=r"line 2: expected"):
        parse_qrels(b"q1\td1\t1\nq1\td2\n", "a.tsv")


def test_merge_files_keeps_known_documents_and_queries_with_text(topics, tmp_path):
    dataset = load_dataset(topics)
    store = JudgmentStore(tmp_path / "overlay")
    qrels = format_qrels({"q-chess": {"chess": 3, "ghost": 1}, "u-new": {"violin": 2}, "u-lost": {"tides": 1}})
    queries = b'{"_id": "u-new", "text": "fiddle strings"}\n'
    overlay, report = merge_files(store, dataset, [("mine.qrels.tsv", qrels.encode()), ("mine.queries.jsonl", queries)])
    assert overlay.qrels == {"q-chess": {"chess": 3}, "u-new": {"violin": 2}}
    assert overlay.queries == {"u-new": "fiddle strings"}
    assert (report.added, report.unknown_documents, report.unknown_queries, report.new_queries) == (2, 1, 1, 1)
    assert "2 new" in report.describe() and "documents not in the corpus" in report.describe()
    _, again = merge_files(store, dataset, [("mine.qrels.tsv", qrels.encode()), ("mine.queries.jsonl", queries)])
    assert (again.added, again.changed, again.unchanged) == (0, 0, 2)


def test_app_state_saves_grades_in_the_overlay_never_in_the_shipped_qrels(topics, tmp_path):
    shipped = (topics / "qrels" / "test.tsv").read_bytes()
    state = AppState(bundled_dir=topics.parent, data_dirs=[], judgments_dir=tmp_path / "judgments")
    key = "bundled:knowledge"
    assert state.judge(key, "where do emperor penguins breed", "volcano", 1) == "q-penguin"
    new = state.judge(key, "Fiddle strings?", "violin", 3)
    assert new == new_query_id("fiddle strings")
    assert state.judge(key, "fiddle   STRINGS", "chess", 0) == new  # the same query, spelled otherwise
    assert (topics / "qrels" / "test.tsv").read_bytes() == shipped
    store = state.judgments(key)
    assert store.folder == tmp_path / "judgments" / "bundled-knowledge"
    assert store.load().queries == {new: "Fiddle strings?"}
    dataset = state.dataset(key)
    assert dataset.qrels["test"]["q-penguin"] == {"penguin": 2, "volcano": 1}
    assert dataset.qrels["test"][new] == {"violin": 3, "chess": 0} and state.overlay_used(key) == 3
    assert state.shipped_dataset(key).qrels["test"]["q-penguin"] == {"penguin": 2}
    with pytest.raises(DataError, match="grade 4"):
        state.judge(key, "fiddle strings", "violin", 4)
    with pytest.raises(DataError, match="not in"):
        state.judge(key, "fiddle strings", "no-such-doc", 1)


def test_unjudged_lists_what_is_left_in_both_top_lists():
    from reranker.types import PipelineResult

    stages = {"fused": ranked("fused", ["a", "b", "c", "d"]), "reranked": ranked("reranked", ["d", "a", "e"])}
    result = PipelineResult("q", stages, (), top_n=3)
    assert unjudged(result, {"a": 2, "e": 0}) == ["b", "c", "d"]


def test_remove_deletes_grades_and_a_new_query_s_text_goes_with_its_last_grade(tmp_path):
    store = JudgmentStore(tmp_path / "overlay")
    store.record([("q1", "d1", 2), ("q1", "d2", 0), ("u-x", "d1", 3), ("u-x", "d2", 1)], {"u-x": "a new query"})
    overlay, removed = store.remove("q1", ["d1", "no-such-doc"])
    assert removed == {"d1": 2} and overlay.qrels["q1"] == {"d2": 0}
    assert overlay_texts(store.load())[0] == "query-id\tcorpus-id\tscore\nq1\td2\t0\nu-x\td1\t3\nu-x\td2\t1\n"
    _, removed = store.remove("u-x", ["d1"])
    assert removed == {"d1": 3} and store.load().queries == {"u-x": "a new query"}  # one grade left: the text stays
    overlay, removed = store.remove("u-x")
    assert removed == {"d2": 1} and "u-x" not in overlay.qrels and store.load().queries == {}
    before = store.stamp()
    assert store.remove("q1", ["d1"])[1] == {} and store.stamp() == before  # nothing removed: nothing written
    assert store.load().qrels == {"q1": {"d2": 0}}


def test_a_grade_after_a_removal_brings_its_query_text_back_and_never_respells_it(tmp_path):
    store = JudgmentStore(tmp_path / "overlay")
    store.record([("u-x", "d1", 1)], queries_if_missing={"u-x": "Fiddle strings?"})
    store.record([("u-x", "d2", 2)], queries_if_missing={"u-x": "fiddle  STRINGS"})
    assert store.load().queries == {"u-x": "Fiddle strings?"}  # the first spelling stays
    store.remove("u-x")
    store.record([("u-x", "d1", 3)], queries_if_missing={"u-x": "fiddle strings"})
    assert store.load().queries == {"u-x": "fiddle strings"}  # the text came back with the grade


def _grade_and_remove(folder: str, writer: int) -> None:
    store = JudgmentStore(folder)
    for i in range(GRADES_EACH):
        store.record([(f"q{writer}", f"d{i}", 1), (f"q{writer}", f"gone{i}", 2)])
        store.remove(f"q{writer}", [f"gone{i}"])


def test_concurrent_grades_and_removals_lose_nothing(tmp_path):
    folder = tmp_path / "overlay"
    _in_threads(_grade_and_remove, folder)
    assert JudgmentStore(folder).load().qrels == {f"q{w}": {f"d{i}": 1 for i in range(GRADES_EACH)} for w in range(WRITERS)}


def test_removing_says_which_shipped_grades_apply_again_and_refuses_when_nothing_is_there(topics, tmp_path):
    dataset = load_dataset(topics)
    shipped = (topics / "qrels" / "test.tsv").read_bytes()
    store = JudgmentStore(tmp_path / "overlay")
    store.record([("q-penguin", "penguin", 0), ("q-penguin", "volcano", 1)])
    report = remove_judgments(store, dataset, "q-penguin", ["penguin", "chess"])
    assert (dict(report.removed), dict(report.shipped), report.missing) == ({"penguin": 0}, {"penguin": 2}, ("chess",))
    assert "The corpus ships its own grade for penguin (2), which applies again" in report.describe()
    assert "no grade of chess" in report.describe()
    merged, _ = with_overlay(dataset, store.load())
    assert merged.qrels["test"]["q-penguin"] == {"penguin": 2, "volcano": 1}  # the shipped grade is back
    with pytest.raises(ConfigError, match=r"no grade of penguin for query 'q-penguin'.*\(2\) comes with the corpus"):
        remove_judgments(store, dataset, "q-penguin", ["penguin"])
    with pytest.raises(ConfigError, match=r"no grades for query 'q-chess'; its 1 grades come with the corpus"):
        remove_judgments(store, dataset, "q-chess")
    with pytest.raises(ConfigError, match="check the query id"):
        remove_judgments(store, dataset, "q-nobody")
    assert remove_judgments(store, dataset, "q-penguin").removed == {"volcano": 1}
    assert (topics / "qrels" / "test.tsv").read_bytes() == shipped


def test_listing_and_exporting_the_overlay_alone_or_merged(topics, tmp_path):
    dataset = load_dataset(topics)
    store = JudgmentStore(tmp_path / "overlay")
    new = new_query_id("fiddle strings")
    store.record([("q-penguin", "penguin", 0), (new, "violin", 3)], {new: "fiddle strings"})
    assert listed_judgments(store.load(), dataset) == [
        ListedJudgment("q-penguin", "where do emperor penguins breed", "penguin", 0, 2, "anonymous"),
        ListedJudgment(new, "fiddle strings", "violin", 3, None, "anonymous"),
    ]
    qrels, queries = overlay_texts(store.load())
    assert qrels == f"query-id\tcorpus-id\tscore\nq-penguin\tpenguin\t0\n{new}\tviolin\t3\n"
    assert queries == f'{{"_id": "{new}", "text": "fiddle strings"}}\n'
    qrels, queries, merged = merged_texts(dataset, store.load())
    assert "q-penguin\tpenguin\t0\n" in qrels and f"{new}\tviolin\t3\n" in qrels and "q-chess\tchess\t2\n" in qrels
    assert queries == f'{{"_id": "{new}", "text": "fiddle strings"}}\n'  # only the query the corpus lacks
    assert any("2 overlay judgments" in p for p in merged.problems)
    with pytest.raises(DataError, match="no relevance judgments for split 'train'"):
        merged_texts(dataset, store.load(), "train")
    assert overlay_texts(Overlay()) == ("query-id\tcorpus-id\tscore\n", None)


def test_app_state_removes_a_grade_made_here_and_the_shipped_grade_shows_again(topics, tmp_path):
    state = AppState(bundled_dir=topics.parent, data_dirs=[], judgments_dir=tmp_path / "judgments")
    key = "bundled:knowledge"
    state.judge(key, "where do emperor penguins breed", "penguin", 0)
    assert state.dataset(key).qrels["test"]["q-penguin"] == {"penguin": 0}
    report = state.unjudge(key, "Where do emperor penguins breed?", "penguin")
    assert dict(report.shipped) == {"penguin": 2}
    assert state.dataset(key).qrels["test"]["q-penguin"] == {"penguin": 2}
    state.judge(key, "Fiddle strings?", "violin", 3)
    state.unjudge(key, "fiddle strings", "violin")
    assert state.judgments(key).load() == Overlay({}, {}, str(state.judgments(key).folder))
    assert new_query_id("fiddle strings") not in state.dataset(key).queries
    with pytest.raises(ConfigError, match="no grade of violin"):
        state.unjudge(key, "fiddle strings", "violin")
