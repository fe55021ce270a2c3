"""Guards against silent nonsense: a checkpoint without a relevance head, a negative depth, and documents
so long that one query would score thousands of windows. Each says what happened, in the API, the
pipeline and the command line alike."""

from __future__ import annotations

import json

import pytest

from reranker.api import Reranker
from reranker.cross_encoder import CrossEncoderReranker, ScoreCache, cap_windows
from reranker.errors import ConfigError
from reranker.models import ALLOW_UNTRAINED_HEAD_ENV, has_ranking_head, resolve_model
from reranker.pipeline import PipelineConfig
from reranker.types import Document
from tests.conftest import BUNDLED_MODEL, SEED_QUERY


@pytest.fixture()
def strict_heads(monkeypatch):
    """The user's default: checkpoints without a trained head are refused (the suite opts in elsewhere)."""
    monkeypatch.delenv(ALLOW_UNTRAINED_HEAD_ENV, raising=False)


@pytest.fixture()
def tiny_beir(tmp_path):
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    docs = [("a", "Attention weighs value vectors by query-key similarity."), ("b", "BM25 saturates term frequency.")]
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in docs))
    return folder


def test_a_bi_encoder_checkpoint_has_no_ranking_head_and_a_cross_encoder_has_one():
    assert not has_ranking_head(resolve_model(BUNDLED_MODEL).path)
    assert has_ranking_head(resolve_model("rerank-lens/minilm-l6-scifact").path)


def test_untrained_head_is_refused_with_the_fix_and_loads_only_when_asked(strict_heads):
    with pytest.raises(ConfigError, match=r"no trained relevance head.*--allow-untrained-head"):
        Reranker(BUNDLED_MODEL, precision="fp32")
    result = Reranker(BUNDLED_MODEL, precision="fp32", allow_untrained_head=True).rerank(SEED_QUERY, ["a", "b"])
    assert len(result) == 2
    assert result.messages[0].startswith("Warning:") and "ranks at random" in result.messages[0]


def test_untrained_head_is_refused_by_the_pipeline_and_the_cli(strict_heads, tiny_beir, seed_corpus, capsys):
    from reranker.cli import main
    from reranker.pipeline import Pipeline

    pipeline = Pipeline(seed_corpus, PipelineConfig(cross_encoder=BUNDLED_MODEL, rerank_depth=3))
    with pytest.raises(ConfigError, match="no trained relevance head"):
        pipeline.search(SEED_QUERY)
    code = main(["search", "--dataset", str(tiny_beir), "--query", "attention", "--cross-encoder", BUNDLED_MODEL])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "no trained relevance head" in err and "Traceback" not in err


@pytest.mark.parametrize("depth", [-1, -5])
def test_a_negative_depth_is_an_error_in_the_config_and_the_cli(depth, tiny_beir, capsys):
    from reranker.cli import main

    with pytest.raises(ConfigError, match="rerank depth must be 0 or more"):
        PipelineConfig(rerank_depth=depth).validate()
    code = main(["search", "--dataset", str(tiny_beir), "--query", "attention", "--rerank-depth", str(depth)])
    assert code == 2 and "rerank depth must be 0 or more" in capsys.readouterr().err


def test_depth_zero_turns_reranking_off_and_says_so(seed_pipeline):
    result = seed_pipeline.search(SEED_QUERY, rerank_depth=0)
    assert result.final_stage == "fused" and not result.reranked
    assert any("Rerank depth 0: reranking is off" in m for m in result.messages)


def test_window_caps_keep_every_document_and_share_the_query_cap():
    assert cap_windows([3, 50, 2], per_document=10, per_query=None) == [3, 10, 2]
    assert cap_windows([10, 10, 10], per_document=None, per_query=12) == [10, 1, 1]
    assert cap_windows([10, 10, 10], per_document=4, per_query=100) == [4, 4, 4]
    assert cap_windows([5, 5], per_document=None, per_query=1) == [1, 1]  # every document keeps one window
    with pytest.raises(ConfigError, match="at least 1"):
        PipelineConfig(max_windows_per_document=0).validate()


def test_a_huge_document_scores_at_most_the_cap_and_says_so():
    huge = Document("huge", " ".join(f"Paragraph {i} discusses retrieval and ranking at length." for i in range(900)))
    short = Document("short", "A short passage about attention.")
    reranker = CrossEncoderReranker(
        BUNDLED_MODEL, max_length=128, chunk_tokens=64, chunk_overlap=16, cache=ScoreCache(), max_windows_per_document=5
    )
    assert reranker.new_pairs_per_document("ranking", [huge, short]) == [5, 1]  # what the latency budget plans with
    scores, messages, scored, _ = reranker.score_documents("ranking", [huge, short])
    assert scored == 6 and len(scores[0].chunks) == 5
    assert len(messages) == 1 and "huge (5 of " in messages[0] and "5 windows per document" in messages[0]
    uncapped = CrossEncoderReranker(
        BUNDLED_MODEL,
        max_length=128,
        chunk_tokens=64,
        chunk_overlap=16,
        cache=ScoreCache(),
        max_windows_per_document=None,
        max_windows_per_query=None,
    )
    assert uncapped.new_pairs_per_document("ranking", [huge])[0] > 100
