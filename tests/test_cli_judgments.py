"""`python -m reranker judgments list|export|import|remove`: the app's overlay for a corpus from the command line,
in the same folder the app and `eval` use, with bad input as one message and exit code 2."""

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
