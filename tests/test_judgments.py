"""Judgments made in the app: the grade log (SQLite) with judges' names and history, the rules that merge judges,
merging over shipped qrels, uploads, removing grades, migrating an earlier overlay, agreement between judges,
and writers and readers that run at once (threads, processes) losing nothing."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest

from reranker.corpus import load_dataset
from reranker.errors import ConfigError, DataError
from reranker.judge_agreement import agreement_html, agreement_report, agreement_text, krippendorff_alpha
from reranker.judgments import (
    DEFAULT_JUDGE,
    MIGRATED_JUDGE,
    OVERLAY_SPLIT,
    JudgmentStore,
    ListedJudgment,
    Overlay,
    consensus,
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

WRITERS = 8
GRADES_EACH = 12  # each write is a transaction of its own: 8 writers x 12 keep the tests to seconds


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


def _two_judges(store: JudgmentStore) -> None:
    """alice and bob grade the same pairs; alice also grades one pair alone.

    pair      alice  bob
    q1 d1     0      0
    q1 d2     1      2
    q2 d1     3      3
    q2 d2     2      2
    q2 d3     1      -
    """
    store.record([("q1", "d1", 0), ("q1", "d2", 1), ("q2", "d1", 3), ("q2", "d2", 2), ("q2", "d3", 1)], judge="alice")
    store.record([("q1", "d1", 0), ("q1", "d2", 2), ("q2", "d1", 3), ("q2", "d2", 2)], judge="bob")


def test_two_judges_grading_the_same_pairs_keep_both_grades_with_their_names(tmp_path):
    store = JudgmentStore(tmp_path / "overlay")
    _two_judges(store)
    overlay = store.load()
    assert overlay.grades["q1"]["d2"] == {"alice": 1, "bob": 2} and overlay.judges == ("alice", "bob")
    assert overlay.qrels["q1"] == {"d1": 0, "d2": 2}  # the default rule: the mean, 1.5, rounded half up
    assert store.load(judge="alice").qrels["q1"] == {"d1": 0, "d2": 1}
    assert store.load(judge="bob").qrels == {"q1": {"d1": 0, "d2": 2}, "q2": {"d1": 3, "d2": 2}}
    events = store.history("q1")
    assert [(e.judge, e.doc, e.grade) for e in events] == [("alice", "d1", 0), ("alice", "d2", 1), ("bob", "d1", 0),
                                                            ("bob", "d2", 2)]
    assert all(e.at.endswith("Z") and e.at[:4].isdigit() and e.corpus == "overlay" and e.origin == "app" for e in events)
    assert overlay.disagreements() == 1
    # bob changes his mind, then removes the grade: both are events; alice's grade then stands alone.
    store.record([("q1", "d2", 1)], judge="bob")
    _, removed = store.remove("q1", ["d2"], judge="bob")
    assert removed == {"d2": 1} and store.load().grades["q1"]["d2"] == {"alice": 1}
    assert [(e.judge, e.grade) for e in store.history("q1")][-2:] == [("bob", 1), ("bob", None)]
    with pytest.raises(DataError, match="name is empty"):
        store.record([("q1", "d1", 1)], judge="  ")


def test_each_rule_merges_disagreeing_judges_as_documented():
    assert [consensus(g, "mean") for g in ([1, 2], [0, 3], [0, 1, 1, 3], [2], [1, 1, 3])] == [2, 2, 1, 2, 2]
    assert [consensus(g, "majority") for g in ([0, 0, 3, 3], [1, 1, 3], [2, 0], [3])] == [3, 1, 2, 3]
    assert [consensus(g, "latest") for g in ([3, 0], [1, 1, 2])] == [0, 2]
    with pytest.raises(ConfigError, match="pick one of mean, majority, latest"):
        JudgmentStore("x", rule="median")


def test_removing_one_judge_s_grade_says_whose_grades_still_apply(topics, tmp_path):
    dataset = load_dataset(topics)
    store = JudgmentStore(tmp_path / "overlay")
    store.record([("q-penguin", "penguin", 0), ("q-penguin", "volcano", 1)], judge="alice")
    store.record([("q-penguin", "penguin", 3)], judge="bob")
    report = remove_judgments(store, dataset, "q-penguin", ["penguin"], judge="alice")
    assert "Removed 1 grade by alice of query q-penguin" in report.describe()
    assert dict(report.others) == {"penguin": {"bob": 3}} and not report.shipped  # bob's grade, not the shipped one
    assert "Other judges' grades still apply to penguin (bob 3)" in report.describe()
    with pytest.raises(ConfigError, match="no grade of penguin for query 'q-penguin' by carol; bob graded it"):
        remove_judgments(store, dataset, "q-penguin", ["penguin"], judge="carol")
    assert with_overlay(dataset, store.load())[0].qrels["test"]["q-penguin"] == {"penguin": 3, "volcano": 1}


def test_krippendorff_alpha_matches_hand_arithmetic_and_the_published_example(tmp_path):
    # _two_judges's paired units: (0,0) (1,2) (3,3) (2,2); q2 d3 has one grade, so it is not pairable.
    # Coincidences (each unit has m_u = 2 values, weight 1/(m_u-1) = 1): o00 = 2, o12 = o21 = 1, o22 = 2, o33 = 2.
    # Totals n0 = 2, n1 = 1, n2 = 3, n3 = 2; n = 8.
    # Ordinal delta2_ck = (sum of n_g for g from c to k - (n_c + n_k)/2)^2:
    #   d01 = (3 - 1.5)^2 = 2.25, d02 = (6 - 2.5)^2 = 12.25, d03 = (8 - 2)^2 = 36,
    #   d12 = (4 - 2)^2 = 4,      d13 = (6 - 1.5)^2 = 20.25, d23 = (5 - 2.5)^2 = 6.25.
    # Observed: sum o_ck d_ck = o12 d12 + o21 d21 = 4 + 4 = 8.
    # Expected: sum over c != k of n_c n_k d_ck = 2 x (2*1*2.25 + 2*3*12.25 + 2*2*36 + 1*3*4 + 1*2*20.25 + 3*2*6.25)
    #         = 2 x (4.5 + 73.5 + 144 + 12 + 40.5 + 37.5) = 2 x 312 = 624.
    # alpha = 1 - (n - 1) * 8 / 624 = 1 - 56/624 = 71/78 = 0.91026.
    # Per query, q1 alone: units (0,0) (1,2); n0 = 2, n1 = n2 = 1, n = 4; d12 = (2 - 1)^2 = 1, d01 = (3 - 1.5)^2 = 2.25,
    #   d02 = (4 - 1.5)^2 = 6.25; observed 2 x 1 = 2; expected 2 x (2*1*2.25 + 2*1*6.25 + 1*1*1) = 36;
    #   alpha = 1 - 3 * 2 / 36 = 5/6. q2: every paired grade agrees, so alpha = 1.
    store = JudgmentStore(tmp_path / "overlay")
    _two_judges(store)
    report = agreement_report(store.current(), {"q1": "first query"})
    assert report.alpha == pytest.approx(71 / 78)
    assert {q.qid: q.alpha for q in report.queries} == pytest.approx({"q1": 5 / 6, "q2": 1.0})
    assert [q.qid for q in report.queries] == ["q1", "q2"]  # the query with a disagreement first
    assert [(p.qid, p.doc, p.spread) for p in report.pairs[:2]] == [("q1", "d2", 1), ("q1", "d1", 0)]  # disagreements first
    assert (len(report.pairs), report.disagreements, report.single, report.exact) == (4, 1, 1, 0.75)
    assert dict(report.judges) == {"alice": 5, "bob": 4} and report.reading().startswith("reliable")
    # Interval: observed 2 x 1^2 = 2; expected 2 x (2*1*1 + 2*3*4 + 2*2*9 + 1*3*1 + 1*2*4 + 3*2*1) = 158; 1 - 7*2/158.
    assert agreement_report(store.current(), level="interval").alpha == pytest.approx(1 - 14 / 158)
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: four observers, 12 units.
    observers = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = [[v for v in unit if v is not None] for unit in zip(*observers, strict=True)]
    assert round(krippendorff_alpha(units, "nominal"), 3) == 0.743
    assert round(krippendorff_alpha(units, "ordinal"), 3) == 0.815
    assert round(krippendorff_alpha(units, "interval"), 3) == 0.849
    assert krippendorff_alpha([[2, 2], [2, 2]]) is None and krippendorff_alpha([[1]]) is None  # no variation; unpaired


def test_the_agreement_views_list_disagreements_first_and_escape_text(tmp_path):
    store = JudgmentStore(tmp_path / "overlay")
    _two_judges(store)
    store.record([("q1", "d3", 0)], judge="<b>eve</b>")
    store.record([("q1", "d3", 3)], judge="bob")
    report = agreement_report(store.current(), {"q1": "<script>x</script>"})
    text = agreement_text(report)
    assert text.index("q1  d3  spread 3") < text.index("q1  d2  spread 1")
    page = agreement_html(report)
    assert "<script>x" not in page and "&lt;script&gt;" in page and "&lt;b&gt;eve" in page
    assert page.index("d3") < page.index("d2") and "Krippendorff" in page
    assert "one judge so far" in agreement_html(agreement_report(JudgmentStore(tmp_path / "alone").current()))


def _named_writer(folder: str, writer: int) -> None:
    store = JudgmentStore(folder)
    for i in range(GRADES_EACH):
        store.record([("shared", f"d{i}", (i + writer) % 4)], judge=f"judge{writer}")


def _check_named_writers(folder) -> None:
    store = JudgmentStore(folder)
    overlay = store.load()
    for i in range(GRADES_EACH):
        assert overlay.grades["shared"][f"d{i}"] == {f"judge{w}": (i + w) % 4 for w in range(WRITERS)}
    assert len(store.history()) == WRITERS * GRADES_EACH


def test_eight_named_judges_writing_at_once_in_threads_lose_nothing(tmp_path):
    _in_threads(_named_writer, tmp_path / "overlay")
    _check_named_writers(tmp_path / "overlay")


def test_eight_named_judges_writing_at_once_in_processes_lose_nothing(tmp_path):
    folder = tmp_path / "overlay"
    context = multiprocessing.get_context("fork")  # as the other process test; no connection outlives an operation
    processes = [context.Process(target=_named_writer, args=(str(folder), w)) for w in range(WRITERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * WRITERS
    _check_named_writers(folder)


def test_readers_while_writers_write_always_see_whole_transactions(tmp_path):
    """Each record writes a pair of grades in one transaction: a reader must see both or neither, and counts
    never go back."""
    folder = tmp_path / "overlay"
    JudgmentStore(folder).record([("warm", "d", 1)])
    seen: list[int] = []
    problems: list[str] = []
    done = threading.Event()

    def write(_folder: str, writer: int) -> None:
        store = JudgmentStore(_folder)
        for i in range(GRADES_EACH):
            store.record([(f"q{writer}", f"a{i}", 1), (f"q{writer}", f"b{i}", 2)], judge=f"w{writer}")

    def read() -> None:
        store = JudgmentStore(folder)
        while not done.is_set():
            qrels = store.load().qrels
            for qid, docs in qrels.items():
                if qid != "warm" and {d[1:] for d in docs if d[0] == "a"} != {d[1:] for d in docs if d[0] == "b"}:
                    problems.append(f"half a transaction in {qid}: {sorted(docs)}")
            seen.append(sum(map(len, qrels.values())))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    _in_threads(write, folder)
    done.set()
    for reader in readers:
        reader.join()
    assert not problems and seen and len(JudgmentStore(folder).load()) == 1 + WRITERS * GRADES_EACH * 2


def test_an_earlier_overlay_is_migrated_once_with_its_time_and_set_aside(topics, tmp_path):
    folder = tmp_path / "judgments" / "bundled-knowledge"
    folder.mkdir(parents=True)
    new = new_query_id("fiddle strings")
    qrels = f"query-id\tcorpus-id\tscore\nq-penguin\tpenguin\t0\n{new}\tviolin\t3\n"
    queries = f'{{"_id": "{new}", "text": "fiddle strings"}}\n'
    (folder / "qrels.tsv").write_text(qrels)
    (folder / "queries.jsonl").write_text(queries)
    (folder / ".lock").write_text("")
    written = time.time() - 86400
    os.utime(folder / "qrels.tsv", (written, written))
    os.utime(folder / "queries.jsonl", (written, written))
    store = JudgmentStore(folder)
    overlay = store.load()  # the first use migrates
    assert overlay.qrels == {"q-penguin": {"penguin": 0}, new: {"violin": 3}} and overlay.queries == {new: "fiddle strings"}
    events = store.history()
    assert {e.judge for e in events} == {MIGRATED_JUDGE} and MIGRATED_JUDGE == DEFAULT_JUDGE
    assert all(e.origin == f"migrated {folder / 'qrels.tsv'}" for e in events)
    assert events[0].at == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(written)) + events[0].at[19:]
    assert not (folder / "qrels.tsv").exists() and (folder / "qrels.tsv.migrated").read_text() == qrels
    assert (folder / "queries.jsonl.migrated").read_text() == queries
    # Used again, or the same files put back (a backup restored): nothing is imported twice.
    assert store.migrate() == 0
    (folder / "qrels.tsv").write_text(qrels)
    assert store.migrate() == 0 and len(store.history()) == 2 and (folder / "qrels.tsv.migrated.2").is_file()
    # A grade given again without a name replaces the migrated one, as it did in the old overlay.
    store.record([("q-penguin", "penguin", 2)])
    assert store.load().qrels["q-penguin"] == {"penguin": 2}
    # The app reads the migrated judgments through the same folder.
    state = AppState(bundled_dir=topics.parent, data_dirs=[], judgments_dir=tmp_path / "judgments")
    assert state.dataset("bundled:knowledge").qrels["test"]["q-penguin"] == {"penguin": 2}


def test_a_broken_earlier_overlay_says_which_file_and_line(tmp_path):
    folder = tmp_path / "overlay"
    folder.mkdir()
    (folder / "qrels.tsv").write_text("q1\td1\t1\nq1\td2\thigh\n")
    with pytest.raises(DataError, match=r"qrels.tsv, line 2: score 'high' is not an integer"):
        JudgmentStore(folder).load()
    assert (folder / "qrels.tsv").is_file()  # left where it is, to be fixed


def test_the_evaluate_tab_s_agreement_section_shows_the_corpus_s_judges(topics, tmp_path):
    from reranker.ui import build_demo
    from reranker.ui.judges_panel import agreement_view

    state = AppState(bundled_dir=topics.parent, data_dirs=[], judgments_dir=tmp_path / "judgments")
    key = "bundled:knowledge"
    assert agreement_view(state, "") == "" and "one judge so far" in agreement_view(state, key)
    store = state.judgments(key)
    store.record([("q-penguin", "penguin", 0), ("q-chess", "chess", 2)], judge="alice")
    store.record([("q-penguin", "penguin", 3), ("q-chess", "chess", 2)], judge="bob")
    page = agreement_view(state, key)
    assert "Krippendorff" in page and "where do emperor penguins breed" in page and "alice 0, bob 3" in page
    events = {fn.api_name for fn in build_demo(state).fns.values() if fn.api_visibility == "public"}
    assert "judges_agreement" in events


def _use(folder: str, _writer: int) -> None:
    JudgmentStore(folder).load()


def test_eight_first_uses_at_once_migrate_an_earlier_overlay_exactly_once(tmp_path):
    folder = tmp_path / "overlay"
    folder.mkdir()
    (folder / "qrels.tsv").write_text("".join(f"q1\td{i}\t{i % 4}\n" for i in range(30)))
    _in_threads(_use, folder)
    store = JudgmentStore(folder)
    assert len(store.history()) == 30 and store.load().qrels["q1"] == {f"d{i}": i % 4 for i in range(30)}
    assert sorted(p.name for p in folder.glob("qrels.tsv*")) == ["qrels.tsv.migrated"]


def test_the_rule_comes_from_the_environment_and_the_merge_note_names_it(topics, tmp_path, monkeypatch):
    dataset = load_dataset(topics)
    store = JudgmentStore(tmp_path / "overlay")
    store.record([("q-penguin", "penguin", 0)], judge="alice")
    store.record([("q-penguin", "penguin", 3)], judge="bob")
    merged, used = with_overlay(dataset, store.load())
    assert used == 1 and merged.qrels["test"]["q-penguin"] == {"penguin": 2}
    assert any("2 judges; 1 pairs they grade differently take the mean" in p and "rule mean" in p for p in merged.problems)
    monkeypatch.setenv("RERANK_LENS_JUDGMENT_RULE", "latest")
    assert JudgmentStore(tmp_path / "overlay").load().qrels == {"q-penguin": {"penguin": 3}}
    assert JudgmentStore(tmp_path / "overlay", rule="majority").load().qrels == {"q-penguin": {"penguin": 3}}
    monkeypatch.setenv("RERANK_LENS_JUDGMENT_RULE", "loudest")
    with pytest.raises(ConfigError, match="unknown judgment rule 'loudest'"):
        JudgmentStore(tmp_path / "overlay")
