"""`python -m reranker judgments list|export|import|remove|history|agreement`: a corpus's grades made in the app,
from the command line, in the same folder the app and `eval` use, with bad input as one message and exit code 2."""

from __future__ import annotations

import json

import pytest

from reranker.cli import main
from reranker.judgments import JudgmentStore, new_query_id, overlay_name
from reranker.ui.state import AppState
from tests.support import write_topics

NEW_QUERY = "fiddle strings"


@pytest.fixture()
def topics(tmp_path):
    return write_topics(tmp_path / "data" / "topics")


@pytest.fixture()
def store(topics, tmp_path, monkeypatch):
    """The overlay the app keeps for the topics folder (its key as a data folder), in this test's own root."""
    monkeypatch.setenv("RERANK_LENS_JUDGMENTS", str(tmp_path / "judgments"))
    return JudgmentStore(tmp_path / "judgments" / overlay_name(f"data:{topics.resolve()}"))


def run(capsys, *argv):
    code = main(["judgments", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def graded(store) -> str:
    """Two grades the way the app saves them: one over a shipped grade, one for a query the corpus lacks."""
    new = new_query_id(NEW_QUERY)
    store.record([("q-penguin", "penguin", 0), (new, "violin", 3)], {new: NEW_QUERY})
    return new


def test_list_shows_each_grade_with_its_query_and_the_shipped_grade(capsys, topics, store):
    code, out, _ = run(capsys, "list", "--dataset", str(topics))
    assert code == 0 and out.startswith("0 judgments for 0 queries") and str(store.folder) in out
    new = graded(store)
    code, out, _ = run(capsys, "list", "--dataset", str(topics))
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("2 judgments for 2 queries")
    assert lines[1].split() == ["qid", "query", "docid", "judge", "grade", "shipped"]
    assert lines[2].split() == ["q-penguin", "where", "do", "emperor", "penguins", "breed", "penguin", "anonymous", "0", "2"]
    assert lines[3].split() == [new, "fiddle", "strings", "violin", "anonymous", "3", "-"]
    code, out, _ = run(capsys, "list", "--dataset", str(topics), "--json")
    data = json.loads(out)
    assert code == 0 and (data["count"], data["queries"], data["overlay_path"]) == (2, 2, str(store.folder))
    assert data["judgments"][0] == {
        "qid": "q-penguin", "query": "where do emperor penguins breed", "docid": "penguin", "judge": "anonymous",
        "grade": 0, "shipped": 2,
    }


def test_export_writes_the_overlay_as_the_app_s_download_or_merged_over_the_shipped_qrels(capsys, topics, store, tmp_path):
    new = graded(store)
    out_dir = tmp_path / "out"
    code, out, _ = run(capsys, "export", "--dataset", str(topics), "--out", str(out_dir))
    assert code == 0 and "wrote 2 judgments (the overlay)" in out
    assert (out_dir / "qrels.tsv").read_text() == f"query-id\tcorpus-id\tscore\nq-penguin\tpenguin\t0\n{new}\tviolin\t3\n"
    assert json.loads((out_dir / "queries.jsonl").read_text()) == {"_id": new, "text": NEW_QUERY}
    code, _, err = run(capsys, "export", "--dataset", str(topics), "--out", str(out_dir))
    assert code == 2 and err.startswith("error: ") and "pass --overwrite" in err and "Traceback" not in err
    code, out, err = run(capsys, "export", "--dataset", str(topics), "--out", str(out_dir), "--merged", "--overwrite")
    assert code == 0 and "wrote 9 judgments (the test split's shipped qrels with the overlay merged over them)" in out
    qrels = (out_dir / "qrels.tsv").read_text().splitlines()
    assert qrels[0] == "query-id\tcorpus-id\tscore"
    assert {"q-penguin\tpenguin\t0", "q-chess\tchess\t2", f"{new}\tviolin\t3"} <= set(qrels)
    assert json.loads((out_dir / "queries.jsonl").read_text()) == {"_id": new, "text": NEW_QUERY}
    assert "2 overlay judgments" in err


def test_import_merges_like_the_app_and_says_the_same(capsys, topics, store, tmp_path):
    qrels = tmp_path / "mine.tsv"
    qrels.write_text("q-chess\tchess\t3\nq-chess\tghost\t1\nu-new\tviolin\t2\nu-lost\ttides\t1\n")
    queries = tmp_path / "mine.jsonl"
    queries.write_text('{"_id": "u-new", "text": "fiddle strings"}\n')
    code, out, _ = run(capsys, "import", str(qrels), "--queries", str(queries), "--dataset", str(topics))
    assert code == 0
    assert out.strip() == (
        f"Merged into the judgments of {topics}: 2 new, 0 changed, 0 unchanged, 1 new queries; ignored 1 for "
        "documents not in the corpus and 1 for queries with no text (their queries.jsonl is needed too)."
    )
    assert store.load().qrels == {"q-chess": {"chess": 3}, "u-new": {"violin": 2}}
    # The app, on the same judgments folder, sees them.
    app = AppState(bundled_dir=tmp_path / "none", data_dirs=[topics.parent], judgments_dir=tmp_path / "judgments")
    assert app.dataset(f"data:{topics.resolve()}").qrels["test"]["u-new"] == {"violin": 2}
    code, out, _ = run(capsys, "import", str(qrels), "--queries", str(queries), "--dataset", str(topics))
    assert "0 new, 0 changed, 2 unchanged" in out


def test_remove_deletes_grades_and_says_which_shipped_grade_applies_again(capsys, topics, store):
    new = graded(store)
    code, out, _ = run(capsys, "remove", "--dataset", str(topics), "--query", "q-penguin", "--doc", "penguin")
    assert code == 0 and "Removed 1 grade of query q-penguin from the overlay: penguin (was 0)" in out
    assert "The corpus ships its own grade for penguin (2), which applies again" in out
    code, out, _ = run(capsys, "remove", "--dataset", str(topics), "--query", new)
    assert code == 0 and store.load().qrels == {} and store.load().queries == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["remove", "--query", "q-penguin", "--doc", "penguin"], "grade of penguin (2) comes with the corpus"),
        (["remove", "--query", "q-nobody"], "no grades for query 'q-nobody' (check the query id)"),
        (["import", "no-such.tsv"], "no-such.tsv: no such file"),
        (["import", "queries.jsonl"], "looks like a queries file"),
        (["import", "mine.tsv", "--queries", "queries.txt"], "--queries takes a queries.jsonl"),
        (["export", "--merged", "--split", "train", "--out", "out"], "no relevance judgments for split 'train'"),
        (["export", "--rule", "judge", "--out", "out"], "name the judge with --judge NAME"),
        (["export", "--rule", "majority", "--judge", "alice", "--out", "out"], "cannot be combined with --rule majority"),
        (["export", "--judge", "nobody", "--out", "out"], "judge 'nobody' has no grades"),
        (["remove", "--query", "q-penguin", "--all-judges"], "no judge has a grade to remove"),
        (["import", "mine.tsv", "--judge", " "], "the judge's name is empty"),
    ],
)
def test_bad_input_gives_one_message_and_exit_code_2(capsys, topics, store, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv, "--dataset", str(topics))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_a_missing_dataset_exits_2(capsys, store, tmp_path):
    code, _, err = run(capsys, "list", "--dataset", str(tmp_path / "nope"))
    assert code == 2 and "no such file or folder" in err


def three_judges(store) -> None:
    """Grades written in this order (alice, then bob, then carol):

    pair                 alice  bob  carol
    q-penguin penguin    0      3    -
    q-penguin volcano    1      1    3
    q-chess   chess      2      -    -
    """
    store.record([("q-penguin", "penguin", 0), ("q-penguin", "volcano", 1), ("q-chess", "chess", 2)], judge="alice")
    store.record([("q-penguin", "penguin", 3), ("q-penguin", "volcano", 1)], judge="bob")
    store.record([("q-penguin", "volcano", 3)], judge="carol")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # mean rounded half up: penguin (0+3)/2 = 1.5 -> 2; volcano (1+1+3)/3 = 1.67 -> 2
        ([], {("q-penguin", "penguin"): 2, ("q-penguin", "volcano"): 2, ("q-chess", "chess"): 2}),
        # majority: penguin 0 vs 3 is a tie -> the higher, 3; volcano 1, 1, 3 -> 1
        (["--rule", "majority"], {("q-penguin", "penguin"): 3, ("q-penguin", "volcano"): 1, ("q-chess", "chess"): 2}),
        # latest written: bob's penguin 3, carol's volcano 3
        (["--rule", "latest"], {("q-penguin", "penguin"): 3, ("q-penguin", "volcano"): 3, ("q-chess", "chess"): 2}),
        (["--judge", "alice"], {("q-penguin", "penguin"): 0, ("q-penguin", "volcano"): 1, ("q-chess", "chess"): 2}),
        (["--rule", "judge", "--judge", "bob"], {("q-penguin", "penguin"): 3, ("q-penguin", "volcano"): 1}),
    ],
)
def test_each_export_rule_gives_the_expected_qrels(capsys, topics, store, tmp_path, options, expected):
    three_judges(store)
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "export", "--dataset", str(topics), "--out", str(out_dir), *options)
    assert code == 0, err
    assert ("grades only" if "--judge" in options else f"(rule {options[1] if options else 'mean'})") in out
    lines = (out_dir / "qrels.tsv").read_text().splitlines()
    assert lines[0] == "query-id\tcorpus-id\tscore"
    assert {(q, d): int(g) for q, d, g in (line.split("\t") for line in lines[1:])} == expected
    code, _, err = run(capsys, "export", "--dataset", str(topics), "--out", str(out_dir), "--format", "trec", *options)
    trec = (out_dir / "qrels.txt").read_text().splitlines()
    assert code == 0 and {(q, d): int(g) for q, zero, d, g in (line.split() for line in trec) if zero == "0"} == expected


def test_agreement_lists_the_pairs_judges_disagree_on_first_in_text_and_json(capsys, topics, store):
    code, out, _ = run(capsys, "agreement", "--dataset", str(topics))
    assert code == 0 and "one judge so far" in out
    three_judges(store)
    code, out, _ = run(capsys, "agreement", "--dataset", str(topics))
    assert code == 0 and out.startswith("Krippendorff's alpha (ordinal): ")
    assert out.index("q-penguin  penguin  spread 3") < out.index("q-penguin  volcano  spread 2")
    code, out, _ = run(capsys, "agreement", "--dataset", str(topics), "--json", "--level", "interval")
    data = json.loads(out)
    # Interval alpha by hand. Units: penguin (0, 3), volcano (1, 1, 3); chess has one grade and is not pairable.
    # Coincidences: penguin (m=2, weight 1): o03 = o30 = 1. volcano (m=3, weight 1/2): the ordered pairs are
    # (1,1) x2, (1,3) x2, (3,1) x2 -> o11 = 1, o13 = o31 = 1. Totals n0 = 1, n1 = 2, n3 = 2, n = 5 (n3 = o30 + o31).
    # Observed: o03 x 9 + o30 x 9 + o13 x 4 + o31 x 4 = 26.
    # Expected: 2 x (n0 n1 x 1 + n0 n3 x 9 + n1 n3 x 4) = 2 x (2 + 18 + 16) = 72.  alpha = 1 - 4 x 26 / 72 = -4/9.
    assert data["metric"] == "krippendorff_alpha_interval" and data["alpha"] == pytest.approx(-4 / 9)
    assert data["judges"] == {"alice": 3, "bob": 2, "carol": 1} and data["pairs_graded_once"] == 1
    assert [(p["docid"], p["spread"]) for p in data["pairs"]] == [("penguin", 3), ("volcano", 2)]
    assert data["pairs"][0]["grades"] == {"alice": 0, "bob": 3} and data["pairs"][0]["query"] == "where do emperor penguins breed"
    assert data["queries"][0]["qid"] == "q-penguin" and "unreliable" in data["reading"]


def test_import_remove_and_history_by_judge(capsys, topics, store, tmp_path):
    qrels = tmp_path / "bob.tsv"
    qrels.write_text("q-chess\tchess\t3\n")
    code, out, _ = run(capsys, "import", str(qrels), "--dataset", str(topics), "--judge", "bob")
    assert code == 0 and "1 new" in out and "(as bob's grades)" in out
    store.record([("q-chess", "chess", 1)], judge="alice")
    code, out, _ = run(capsys, "list", "--dataset", str(topics), "--judge", "bob")
    assert code == 0 and out.startswith("1 judgments for 1 queries made in the app or imported, by 1 judge")
    code, out, err = run(capsys, "remove", "--dataset", str(topics), "--query", "q-chess")
    assert code == 2 and "by anonymous; alice and bob graded them" in err
    code, out, _ = run(capsys, "remove", "--dataset", str(topics), "--query", "q-chess", "--judge", "bob")
    assert code == 0 and "Removed 1 grade by bob of query q-chess" in out
    assert "Other judges' grades still apply to chess (alice 1)" in out
    code, out, _ = run(capsys, "remove", "--dataset", str(topics), "--query", "q-chess", "--all-judges")
    assert code == 0 and "Removed 1 grade by alice" in out and "The corpus ships its own grade for chess (2)" in out
    code, out, _ = run(capsys, "history", "--dataset", str(topics), "--json")
    events = json.loads(out)["events"]
    assert [(e["judge"], e["grade"]) for e in events] == [("bob", 3), ("alice", 1), ("bob", None), ("alice", None)]
    assert events[0]["origin"] == f"import {qrels}" and events[1]["origin"] == "app"
    code, out, _ = run(capsys, "history", "--dataset", str(topics), "--query", "q-chess")
    assert code == 0 and out.startswith("4 grade events of query q-chess") and "removed" in out
