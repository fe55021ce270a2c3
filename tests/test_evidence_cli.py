"""`eval --json` carries intervals, bounds and MDE; `eval --slices`, `judgments next` and `calibrate` run end to end
on a tiny BEIR folder with fast configurations."""

from __future__ import annotations

import json

import pytest

from reranker.cli import main
from tests.conftest import SEED_DOCUMENTS, SEED_QUERY
from tests.support import write_beir

TINY = "rerank-lens/tiny-general"


@pytest.fixture(scope="module")
def beir(tmp_path_factory):
    queries = {"q1": SEED_QUERY, "q2": "recurrent networks with a hidden state", "q3": "cost of self-attention on long inputs"}
    qrels = {"q1": {"attention-def": 2, "attention-cost": 1}, "q2": {"rnn": 2}, "q3": {"attention-cost": 2, "bert": 0}}
    folder = write_beir(tmp_path_factory.mktemp("beir"), SEED_DOCUMENTS, queries, qrels)
    lines = (folder / "queries.jsonl").read_text().splitlines()
    typed = [
        json.dumps({**json.loads(line), "metadata": {"type": "question" if i else "keyword"}}) for i, line in enumerate(lines)
    ]
    (folder / "queries.jsonl").write_text("\n".join(typed) + "\n")
    return folder


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RERANK_LENS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("RERANK_LENS_JUDGMENTS", str(tmp_path_factory.getbasetemp() / "judgments"))


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _inside(pair, value):
    return pair[0] - 1e-4 <= value <= pair[1] + 1e-4  # figures are rounded to 4 digits


def test_eval_json_carries_intervals_bounds_and_mde(beir, capsys):
    code, out, err = _run(capsys, "eval", "--dataset", str(beir), "--compare", "bm25,fused", "--json")
    assert code == 0, err
    data = json.loads(out)
    for name, config in data["configurations"].items():
        assert set(config["ci95"]) == set(data["metrics"])
        for metric, pair in config["ci95"].items():
            assert _inside(pair, config["metrics"][metric]), (name, metric)
        assert config["metrics"]["judged@10"] < 1  # five documents, four judged per query at most
        assert set(config["bounds"]) == {"ndcg@10", "mrr@10", "recall@100", "map@100"}
        low, high = config["bounds"]["ndcg@10"]
        assert _inside((low, high), config["metrics"]["ndcg@10"])
    entry = data["configurations"]["bm25"]["significance"]["ndcg@10"]
    assert _inside(entry["delta_ci95"], entry["delta"])
    assert entry["mde"] is None or entry["mde"] >= 0
    assert "bootstrap" in data["uncertainty"]["ci95"]
    code, out, _ = _run(capsys, "eval", "--dataset", str(beir), "--compare", "bm25,fused")
    assert code == 0 and "95% intervals" in out and "bounds with unjudged top-k documents" in out and "MDE" in out


def test_eval_slices_table_and_json(beir, capsys):
    argv = ["eval", "--dataset", str(beir), "--compare", "fused", f"tiny=rerank:{TINY}@rerank_depth=3", "--slices"]
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    slices = json.loads(out)["slices"]["tiny"]
    features = {s["feature"] for s in slices}
    assert {"query type", "query length", "truncation", "lexical overlap", "first relevant before reranking"} <= features
    types = {s["bin"]: s["queries"] for s in slices if s["feature"] == "query type"}
    assert types == {"keyword": 1, "question": 2}
    assert all(_inside(s["ci95"], s["mean_delta"]) for s in slices)
    code, out, _ = _run(capsys, *argv)
    assert code == 0 and "slices of tiny" in out and "query type" in out and "95% intervals" in out


def test_judgments_next_lists_unjudged_documents(beir, capsys):
    code, out, err = _run(capsys, "judgments", "next", "--dataset", str(beir), "--compare", "bm25", "dense", "--n", "3", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert 0 < len(data["queue"]) <= 3
    swings = [abs(item["swing"]) for item in data["queue"]]
    assert swings == sorted(swings, reverse=True)
    judged = {("q1", "attention-def"), ("q1", "attention-cost"), ("q2", "rnn"), ("q3", "attention-cost"), ("q3", "bert")}
    assert not {(i["query_id"], i["doc_id"]) for i in data["queue"]} & judged


def test_calibrate_reports_a_threshold_or_why_not(beir, capsys):
    argv = ["calibrate", "--dataset", str(beir), "--model", TINY, "--precision", "0.5", "--rerank-depth", "5", "--json"]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    model = json.loads(out)["models"][TINY]
    assert model["pairs"] == 15 and model["relevant"] == 4 and sum(b["pairs"] for b in model["bins"]) == 15
    assert model["threshold"] is not None or model["reason"]
    code, _, err = _run(capsys, "calibrate", "--dataset", str(beir), "--precision", "1.5")
    assert code == 2 and "--precision" in err
