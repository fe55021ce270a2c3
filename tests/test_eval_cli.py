"""`python -m reranker eval` with --compare, --per-query, --trec-runs and significance in --json."""

from __future__ import annotations

import csv
import json

import pytest

from reranker.cli import main
from reranker.judgments import JudgmentStore, new_query_id, overlay_name
from reranker.runs import read_run
from tests.conftest import SEED_DOCUMENTS, SEED_QUERY
from tests.support import write_beir

CORE_KEYS = {"dataset", "split", "queries", "cross_encoder", "stages", "latency_ms"}


@pytest.fixture(scope="module")
def beir(tmp_path_factory):
    queries = {"q1": SEED_QUERY, "q2": "recurrent networks with a hidden state", "q3": "cost of self-attention on long inputs"}
    qrels = {
        "q1": {"attention-def": 2, "attention-cost": 1},
        "q2": {"rnn": 2},
        "q3": {"attention-cost": 2, "no-such-doc": 1},  # an unknown document and an unknown query: counted, not fatal
        "q9": {"bert": 1},
    }
    return write_beir(tmp_path_factory.mktemp("beir"), SEED_DOCUMENTS, queries, qrels)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RERANK_LENS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _run(capsys, *argv):
    code = main(["eval", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compare_json_keeps_the_core_shape_and_adds_significance(beir, tmp_path, capsys):
    per_query = tmp_path / "out.csv"
    runs = tmp_path / "runs"
    code, out, err = _run(
        capsys,
        "--dataset",
        str(beir),
        "--compare",
        "bm25,dense",
        "fused",
        "--per-query",
        str(per_query),
        "--trec-runs",
        str(runs),
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert CORE_KEYS <= set(data)
    assert data["queries"] == 3 and data["split"] == "test" and data["cross_encoder"] is None
    assert set(data["stages"]) == {"bm25", "dense", "fused"}
    assert set(data["stages"]["fused"]) >= {"ndcg@10", "mrr@10", "recall@100"}
    assert data["baseline"] == "fused" and data["stat_test"] == "student"
    assert list(data["configurations"]) == ["bm25", "dense", "fused"]
    bm25 = data["configurations"]["bm25"]
    assert bm25["metrics"]["ndcg@10"] == data["stages"]["bm25"]["ndcg@10"]
    assert 0.0 <= bm25["significance"]["ndcg@10"]["p_value"] <= 1.0
    assert data["configurations"]["fused"]["significance"] is None
    assert any("1 for unknown documents" in p and "1 judgments for unknown queries" in p for p in data["problems"])
    rows = list(csv.DictReader(per_query.open()))
    assert len(rows) == 3 * 3 and data["per_query_file"] == str(per_query)
    fused_run = read_run(runs / "fused.trec").as_run()
    assert set(fused_run) == {"q1", "q2", "q3"}


def test_plain_eval_reports_stages_as_configurations_and_a_broken_model_as_an_error(beir, capsys):
    code, out, err = _run(capsys, "--dataset", str(beir), "--cross-encoder", "/no/such/model", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert list(data["configurations"]) == ["bm25", "dense", "fused", "reranked"]
    assert "/no/such/model" in data["configurations"]["reranked"]["error"]
    assert "could not run" in err
    assert set(data["stages"]) == {"bm25", "dense", "fused"}


def test_plain_eval_runs_the_coarse_cross_encoder_it_is_given(beir, capsys):
    """--coarse-cross-encoder without --compare makes the reranked configuration a cascade (it was dropped)."""
    tiny = "rerank-lens/tiny-general"
    code, out, err = _run(
        capsys, "--dataset", str(beir), "--cross-encoder", tiny, "--coarse-cross-encoder", tiny, "--coarse-depth", "4",
        "--rerank-depth", "2", "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert "coarse" in data["stages"] and data["configurations"]["reranked"]["spec"] == f"cascade:{tiny}+{tiny}"


def test_text_output_marks_the_baseline_test(beir, capsys):
    code, out, _ = _run(capsys, "--dataset", str(beir), "--compare", "bm25,fused", "--baseline", "bm25", "--limit", "2")
    assert code == 0
    assert "baseline bm25" in out and "paired t-test" in out and "wins/ties/losses" in out


def test_eval_merges_the_judgments_made_in_the_app_and_says_how_many(beir, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_LENS_JUDGMENTS", str(tmp_path))
    store = JudgmentStore(tmp_path / overlay_name(f"data:{beir.resolve()}"))  # the app's key for this folder
    new = new_query_id("how does BERT pretrain")
    store.record([("q2", "rnn", 0), ("q2", "bert", 2), (new, "bert", 3)], {new: "how does BERT pretrain"})
    code, out, err = _run(capsys, "--dataset", str(beir), "--compare", "bm25", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["overlay_judgments"] == 3 and data["overlay_path"] == str(store.folder)
    assert data["queries"] == 4  # the three shipped queries and the one judged in the app
    assert any("3 overlay judgments" in p and "merged over the shipped qrels" in p for p in data["problems"])
    code, out, _ = _run(capsys, "--dataset", str(beir), "--compare", "bm25", "--no-overlay")
    assert code == 0 and "3 judged queries" in out and "overlay" not in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--split", "train"], "no relevance judgments for split 'train'"),
        (["--compare", "fused", "--baseline", "bm25"], "baseline 'bm25'"),
        (["--compare", "cascade:x"], "COARSE+FINE"),
        (["--compare", "a=bm25,b=dense,c=fused,d=auto,e=bm25"], "at most 4"),
    ],
)
def test_bad_input_exits_2_with_the_fix(beir, capsys, argv, message):
    code, _, err = _run(capsys, "--dataset", str(beir), *argv)
    assert code == 2 and message in err


def test_a_dataset_without_qrels_explains_what_is_missing(tmp_path, capsys):
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "some text"}) + "\n")
    code, _, err = _run(capsys, "--dataset", str(tmp_path), "--cross-encoder", "none")
    assert code == 2 and "add qrels/test.tsv" in err
