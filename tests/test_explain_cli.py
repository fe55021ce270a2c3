"""`python -m reranker explain`: a table or JSON of each sentence's logit change for one document, its options
derived from PipelineConfig (cross-encoder settings only), and errors as one message with exit code 2."""

from __future__ import annotations

import json

import pytest

from reranker.cli import build_parser, main
from reranker.commands.explain import EXPLAIN_OPTIONS, SHOWN
from reranker.pipeline import PipelineConfig
from tests.conftest import BUNDLED_MODEL, SEED_DOCUMENTS, SEED_QUERY
from tests.support import write_beir

LONG = " ".join(f"Paragraph {i} covers harbour cranes and container schedules in detail." for i in range(40))
SETTINGS = ("--cross-encoder", BUNDLED_MODEL, "--max-length", "128", "--chunk-tokens", "64", "--chunk-overlap", "16")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from reranker.types import Document

    docs = [*SEED_DOCUMENTS, Document("harbour", LONG, "Harbour <operations>")]
    return write_beir(tmp_path_factory.mktemp("explain"), docs, {"q1": SEED_QUERY}, {"q1": {"attention-def": 2}})


def run(capsys, *argv):
    code = main(["explain", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_every_sentence_with_its_offsets_and_the_unit(capsys, folder):
    code, out, err = run(capsys, "--dataset", str(folder), "--query", "q1", "--doc", "harbour", *SETTINGS, "--json")
    assert code == 0, err
    data = json.loads(out)
    full_text = f"Harbour <operations>\n{LONG}"
    assert data["query"] == SEED_QUERY and data["doc_id"] == "harbour" and "query q1 is" in err
    assert data["unit"] == "logit change" and data["method"] == "occlusion" and data["precision"] == "fp32"
    assert data["windows"] > 1 and data["window"]["deciding"]
    spans = data["spans"]
    assert len(spans) >= 3 and all(full_text[s["start"] : s["end"]] == s["text"] for s in spans)
    assert data["window"]["start"] <= spans[0]["start"] and spans[-1]["end"] <= data["window"]["end"]


def test_table_writes_the_unit_out_and_token_spans_work(capsys, folder):
    argv = ("--dataset", str(folder), "--query", SEED_QUERY, "--doc", "harbour", *SETTINGS)
    code, out, _ = run(capsys, *argv, "--granularity", "tokens", "--span-tokens", "8", "--window", "1")
    assert code == 0
    assert "window 1 of" in out and "logit change: the window's score minus its score with the token span removed" in out
    assert "token span" in out and "largest:" in out and "one forward pass" in out
    rows = [line for line in out.splitlines() if line[:9].strip().startswith(("+", "-"))]
    assert len(rows) == 8  # 64 tokens in spans of 8


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--doc", "missing"], "no document with id 'missing'"),
        (["--doc", "harbour", "--cross-encoder", "none"], "no cross-encoder to explain"),
        (["--doc", "harbour", "--window", "0"], "--window counts from 1"),
        (["--doc", "harbour", "--window", "99"], "window index 98 (counting from 0) does not exist"),
        (["--doc", "harbour", "--granularity", "tokens", "--span-tokens", "1"], "at least 2 tokens"),
    ],
)
def test_bad_input_gives_a_message_and_exit_code_2(capsys, folder, argv, message):
    code, _, err = run(capsys, "--dataset", str(folder), "--query", SEED_QUERY, *SETTINGS, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_options_are_the_cross_encoder_settings_of_pipeline_config():
    args = build_parser().parse_args(["explain", "--dataset", "d", "--query", "q", "--doc", "x"])
    fields = set(PipelineConfig.__dataclass_fields__)
    assert {"cross_encoder", "chunk_tokens", "chunk_overlap", "aggregation", "precision", "device", "max_length"} <= SHOWN
    assert SHOWN | set(EXPLAIN_OPTIONS) == fields and not SHOWN & set(EXPLAIN_OPTIONS)
    assert all(getattr(args, name) == getattr(PipelineConfig(), name) for name in SHOWN)
    assert not any(hasattr(args, name) for name in EXPLAIN_OPTIONS)  # e.g. --rrf-k cannot change one document's score
