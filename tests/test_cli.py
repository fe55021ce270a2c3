from __future__ import annotations

import json
import subprocess
import sys

import pytest

from reranker.cli import main
from tests.conftest import BUNDLED_MODEL, SEED_DOCUMENTS, SEED_QUERY
from tests.support import write_beir


@pytest.fixture(scope="module")
def beir_folder(tmp_path_factory):
    qrels = {"q1": {"attention-def": 2, "bert": 1}}
    return write_beir(tmp_path_factory.mktemp("seed"), SEED_DOCUMENTS, {"q1": SEED_QUERY}, qrels)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_prints_both_rankings_movements_and_milliseconds(capsys, beir_folder):
    code, out, _ = run(capsys, "search", "--dataset", str(beir_folder), "--query", SEED_QUERY, "--cross-encoder", BUNDLED_MODEL)
    assert code == 0
    assert "fused final  move" in out and "attention-def" in out
    assert "latency: bm25" in out and "reranked" in out and " ms" in out


def test_search_json_shape(capsys, beir_folder):
    code, out, _ = run(
        capsys, "search", "--dataset", str(beir_folder), "--query", SEED_QUERY, "--cross-encoder", BUNDLED_MODEL, "--json"
    )
    data = json.loads(out)
    assert code == 0 and data["final_stage"] == "reranked"
    row = data["results"][0]
    assert set(row["ranks"]) == {"bm25", "dense", "fused", "reranked"}
    assert row["movement"] in {"up", "down", "same", "new", "dropped", "unscored"}
    assert set(data["latency_ms"]) == {"bm25", "dense", "fused", "reranked"}
    assert "logit" in data["score_label"]


def test_eval_json_shape_without_cross_encoder(capsys, beir_folder):
    code, out, _ = run(capsys, "eval", "--dataset", str(beir_folder), "--split", "test", "--cross-encoder", "none", "--json")
    data = json.loads(out)
    assert code == 0
    assert set(data["stages"]) == {"bm25", "dense", "fused"}
    for metrics in data["stages"].values():
        assert {"ndcg@10", "mrr@10", "recall@100"} <= set(metrics)
        assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert data["stages"]["dense"]["mrr@10"] == 1.0  # the definition is dense's first hit
    assert {"bm25", "dense", "fused"} <= set(data["latency_ms"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--query", "   "], "query is empty"),
        (["--query", "x", "--cross-encoder", "cross-encoder/ms-marco-MiniLM-L6-v2"], "hub is unreachable"),
        (["--query", "x", "--cross-encoder", "./missing-model-dir"], "check the path"),
    ],
)
def test_bad_input_gives_a_message_and_exit_code_2(capsys, beir_folder, argv, message):
    code, _, err = run(capsys, "search", "--dataset", str(beir_folder), *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_speed_flags_reach_the_pipeline(capsys, beir_folder):
    code, out, _ = run(
        capsys, "search", "--dataset", str(beir_folder), "--query", SEED_QUERY, "--cross-encoder", BUNDLED_MODEL,
        "--precision", "fp32", "--latency-budget-ms", "0.001", "--max-length", "128", "--json",
    )
    data = json.loads(out)
    assert code == 0
    assert any("Latency budget" in m for m in data["messages"])  # a budget nothing fits in is explained, not ignored
    code, _, err = run(capsys, "search", "--dataset", str(beir_folder), "--query", "x", "--max-length", "8")
    assert code == 2 and err.startswith("error: max_length") and "between 32 and 8192" in err
    code, _, err = run(capsys, "search", "--dataset", str(beir_folder), "--query", "x", "--latency-budget-ms", "-5")
    assert code == 2 and "latency budget must be a positive number" in err


def test_broken_corpus_names_file_and_line(capsys, tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"_id": "a", "text": "fine"}\n{"_id": "b", "text": oops}\n')
    code, _, err = run(capsys, "search", "--dataset", str(tmp_path), "--query", "x", "--cross-encoder", "none")
    assert code == 2 and "corpus.jsonl, line 2: broken JSON" in err


def test_missing_dataset_and_missing_split(capsys, tmp_path, beir_folder):
    code, _, err = run(capsys, "search", "--dataset", str(tmp_path / "nope"), "--query", "x")
    assert code == 2 and "no such file or folder" in err
    code, _, err = run(capsys, "eval", "--dataset", str(beir_folder), "--split", "train", "--cross-encoder", "none")
    assert code == 2 and "no relevance judgments for split 'train'" in err


def test_module_entry_point_runs(beir_folder):
    proc = subprocess.run(
        [sys.executable, "-m", "reranker", "search", "--dataset", str(beir_folder), "--query", "", "--cross-encoder", "none"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "error: The query is empty" in proc.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly(beir_folder):
    # `... | head`: the pipe is closed before the command writes; no traceback, a shell's SIGPIPE-like status.
    argv = [sys.executable, "-m", "reranker", "search", "--dataset", str(beir_folder), "--query", SEED_QUERY]
    argv += ["--cross-encoder", "none"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
