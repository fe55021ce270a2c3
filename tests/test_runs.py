"""TREC run files (reranker/runs.py): the written format, exact round trips, and every refusal naming file and line."""

from __future__ import annotations

import pytest

from reranker.corpus import build_corpus
from reranker.errors import ConfigError, DataError
from reranker.runs import check_run, format_run, parse_run, read_run, write_run
from reranker.types import Document


def test_format_orders_by_score_keeps_tie_order_and_round_trips_exactly():
    # RRF scores of ranks (1, 28) and (2, 26): equal to six decimals, different floats.
    close = (1 / 61 + 1 / 88, 1 / 62 + 1 / 86)
    assert f"{close[0]:.6f}" == f"{close[1]:.6f}" and close[0] != close[1]
    run = {"q1": {"d2": 0.5, "d1": 0.9, "d3": 0.5, "d4": close[1], "d5": close[0]}, "q2": {"d9": -1.0}}
    text = format_run(run, "my run")
    assert text.splitlines()[:3] == ["q1 Q0 d1 1 0.9 my_run", "q1 Q0 d2 2 0.5 my_run", "q1 Q0 d3 3 0.5 my_run"]
    assert text.splitlines()[-1] == "q2 Q0 d9 1 -1.0 my_run"
    tied = format_run({"q": {"b": 1.0, "a": 1.0}}, "t")
    assert tied.splitlines() == ["q Q0 b 1 1.0 t", "q Q0 a 2 1.0 t"]  # ties keep the ranking's order
    parsed = parse_run(text)
    assert parsed.as_run() == {"q1": {"d1": 0.9, "d2": 0.5, "d3": 0.5, "d5": close[0], "d4": close[1]}, "q2": {"d9": -1.0}}
    assert [list(v) for v in parsed.as_run().values()] == [["d1", "d2", "d3", "d5", "d4"], ["d9"]]
    assert parsed.tags == ("my_run",)
    assert format_run(run, "t", depth=1).count("\n") == 2


def test_format_refuses_what_a_run_cannot_hold():
    with pytest.raises(ConfigError, match="whitespace"):
        format_run({"q 1": {"d": 1.0}}, "t")
    with pytest.raises(ConfigError, match="not a finite number"):
        format_run({"q1": {"d": float("nan")}}, "t")


def test_write_is_atomic_and_leaves_the_old_file_when_formatting_fails(tmp_path):
    path = tmp_path / "sub" / "run.trec"
    write_run(path, {"q1": {"a": 2.0, "b": 1.0}}, "first")
    before = path.read_text()
    with pytest.raises(ConfigError):
        write_run(path, {"q1": {"a": 2.0}, "q2": {"b": float("inf")}}, "second")
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == ["run.trec"]  # no temporary file left behind


def test_ranked_list_renumbers_ranks_in_rank_order():
    run = parse_run("q1 Q0 b 7 0.5 t\nq1 Q0 a 0 0.9 t\nq1 Q0 c 9 0.5 t\n", "in.trec")
    ranked = run.ranked_list("q1")
    assert ranked.stage == "run" and ranked.doc_ids() == ["a", "b", "c"]
    assert [h.rank for h in ranked] == [1, 2, 3] and [h.score for h in ranked] == [0.9, 0.5, 0.5]
    assert "in.trec" in ranked.score_label and "tag t" in ranked.score_label


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("q1 Q0 a 1 0.9 t\nq1 a 2 0.5\n", 2, "expected 6 fields"),
        ("q1 Q0 a one 0.9 t\n", 1, "rank 'one' is not a whole number"),
        ("q1 Q0 a -1 0.9 t\n", 1, "negative"),
        ("q1 Q0 a 1 high t\n", 1, "score 'high' is not a finite number"),
        ("q1 Q0 a 1 nan t\n", 1, "not a finite number"),
        ("q1 Q0 a 1 0.9 t\nq2 Q0 a 1 0.9 t\nq1 Q0 b 1 0.8 t\n", 3, "rank 1 twice (a at line 1, b here)"),
        ("q1 Q0 a 1 0.9 t\nq1 Q0 a 2 0.8 t\n", 2, "lists document a twice (first at line 1)"),
        ("q1 Q0 a 1 0.5 t\nq1 Q0 b 2 0.9 t\n", 2, "ranks must follow scores"),
        ("\n\n", None, "the run is empty"),
    ],
)
def test_parse_refuses_bad_lines_naming_file_and_line(text, line, message):
    with pytest.raises(DataError, match=r"run\.trec") as caught:
        parse_run(text, "run.trec")
    assert message in str(caught.value)
    assert caught.value.line == line
    if line is not None:
        assert f"run.trec, line {line}: " in str(caught.value)


def test_read_names_the_file(tmp_path):
    with pytest.raises(DataError, match="no such run file"):
        read_run(tmp_path / "missing.trec")
    (tmp_path / "binary.trec").write_bytes(b"\xff\xfe\x00q1")
    with pytest.raises(DataError, match=r"binary\.trec: not UTF-8"):
        read_run(tmp_path / "binary.trec")


def test_check_run_refuses_unknown_queries_and_documents_with_their_lines():
    corpus = build_corpus([Document("a", "alpha"), Document("b", "beta")])
    queries = {"q1": "first", "q2": "second"}
    check_run(parse_run("q1 Q0 a 1 2 t\nq2 Q0 b 1 1 t\n", "ok.trec"), corpus, queries)
    with pytest.raises(DataError) as caught:
        check_run(parse_run("q1 Q0 a 1 2 t\nq7 Q0 a 1 2 t\nq7 Q0 b 2 1 t\n", "in.trec"), corpus, queries)
    assert str(caught.value).startswith("in.trec, line 2: query 'q7' is not in the dataset's queries file")
    text = "".join(f"q1 Q0 x{i} {i} {10 - i} t\n" for i in range(1, 8)) + "q1 Q0 a 8 1 t\n"
    with pytest.raises(DataError) as caught:
        check_run(parse_run(text, "in.trec"), corpus, queries)
    message = str(caught.value)
    assert message.startswith("in.trec, line 1: document 'x1' is not in the dataset's corpus")
    assert "7 document lines like this; the next at lines 2, 3, 4, 5 and 2 more" in message
    assert "is the run for this dataset?" in message
