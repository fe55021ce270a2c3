"""The long-query input policy: pair length, query cut, document windows, blend, and the note that says so."""

from __future__ import annotations

import pytest

from reranker.corpus import build_corpus
from reranker.errors import ConfigError
from reranker.input_policy import (
    UNCHANGED,
    InputNote,
    InputPolicy,
    blend_for,
    cut_ids,
    describe,
    needs_note,
    plan_pairs,
    query_ranges,
)
from reranker.types import Document

GENERAL = "rerank-lens/minilm-l6-general"
LONG = InputPolicy(extend_long_queries=True, min_window_tokens=192, query_cut="edges", long_query_blend=0.8)
MINILM = {"training_length": 256, "position_limit": 512, "special_tokens": 3, "chunk_tokens": 400}


def test_a_short_query_keeps_todays_layout_and_blend():
    for policy in (UNCHANGED, LONG):
        plan = plan_pairs(20, policy=policy, **MINILM)
        assert (plan.pair_tokens, plan.kept, plan.window_tokens, plan.long_query) == (256, ((0, 20),), 233, False)
        assert blend_for(0.5, plan, policy) == 0.5
        assert not needs_note(plan)


def test_a_long_query_gets_the_position_limit_and_keeps_its_whole_text_while_windows_stay_useful():
    plan = plan_pairs(150, policy=LONG, **MINILM)
    assert plan.long_query and plan.extended and not plan.cut
    assert (plan.pair_tokens, plan.window_tokens) == (512, 359)  # 512 - 3 specials - 150
    assert blend_for(0.5, plan, LONG) == 0.8
    assert needs_note(plan)


def test_a_very_long_query_is_cut_to_its_start_and_end_so_documents_keep_the_minimum_window():
    plan = plan_pairs(400, policy=LONG, **MINILM)
    assert plan.kept == ((0, 128), (272, 400)) and plan.kept_tokens == 256
    assert plan.window_tokens == 253 >= LONG.min_window_tokens
    start_only = plan_pairs(400, policy=InputPolicy(extend_long_queries=True, min_window_tokens=192), **MINILM)
    assert start_only.kept == ((0, 256),)
    assert cut_ids(tuple(range(400)), plan) == (*range(128), *range(272, 400))


def test_the_unchanged_policy_cuts_as_before_only_when_fewer_than_32_tokens_are_left():
    assert not plan_pairs(221, policy=UNCHANGED, **MINILM).cut  # 253 - 221 = 32 left: whole query, 32-token windows
    plan = plan_pairs(222, policy=UNCHANGED, **MINILM)
    assert (plan.kept, plan.window_tokens, plan.pair_tokens) == (((0, 128),), 125, 256)
    assert blend_for(0.5, plan, UNCHANGED) == 0.5


def test_an_explicit_pair_length_is_never_extended_and_a_higher_card_blend_is_kept():
    plan = plan_pairs(150, policy=LONG, length_fixed=True, **MINILM)
    assert (plan.pair_tokens, plan.extended) == (256, False)
    assert plan.kept_tokens == 61 and plan.window_tokens == 192  # the query gives way to the minimum window
    assert blend_for(0.9, plan, LONG) == 0.9


def test_query_ranges_split_an_odd_budget_and_keep_short_queries_whole():
    assert query_ranges(10, 5, "edges") == ((0, 3), (8, 10))
    assert query_ranges(10, 12, "start") == ((0, 10),)


def test_the_note_says_what_was_cut_the_window_and_the_blend():
    plan = plan_pairs(400, policy=LONG, **MINILM)
    text = describe(InputNote(plan, ("the middle of it",), 0.5, 0.8, False))
    assert "400 tokens" in text and "512 tokens" in text and "start and its end, 256 of 400" in text
    assert "“the middle of it”" in text and "windows of up to 253 tokens" in text
    assert "0.8 of the fused score instead of the model card's 0.5" in text
    keyhole = plan_pairs(222, policy=UNCHANGED, **MINILM)
    assert "(below a useful size)" in describe(InputNote(keyhole, ("x",), 0.5, 0.5, False))
    assert "set to 0.2" in describe(InputNote(keyhole, ("x",), 0.5, 0.2, True))


def test_a_bad_policy_is_refused_with_the_field_named():
    with pytest.raises(ConfigError, match="long_query_blend"):
        InputPolicy(long_query_blend=1.5).validate()
    with pytest.raises(ConfigError, match="query_cut"):
        InputPolicy.from_card({"query_cut": "middle"})
    assert InputPolicy.from_card(None) is UNCHANGED


# ---------------------------------------------------------------- on the shipped model

SENTENCE = "Sparse retrieval with BM25 weighs rare terms by inverse document frequency and saturates term counts. "
QUESTION = "Which first stage should a reranker over support tickets start from?"


@pytest.fixture(scope="module")
def general():
    from reranker.cross_encoder import CrossEncoderReranker

    return CrossEncoderReranker(GENERAL, cache=None)


def test_the_general_model_reads_a_long_querys_start_and_end_and_reports_the_middle(general):
    query = "START " + SENTENCE * 30 + QUESTION  # about 550 tokens
    plan = general.plan_query(query, LONG)
    assert (plan.pair_tokens, plan.kept_tokens, plan.window_tokens) == (512, 256, 253)
    text, ids, message = general.pair_query(query, LONG)
    assert text.startswith("start sparse retrieval") and text.endswith("start from?")
    assert len(ids) == 256 and "start and end, 256 tokens" in message
    (dropped,) = general.dropped_text(query, plan)
    assert "…" in dropped and QUESTION not in dropped
    long_doc = Document("d", "Support tickets. " + "BM25 is a strong first stage for keyword-heavy tickets. " * 60)
    scores, _, _, _ = general.score_documents(query, [long_doc], LONG)
    assert max(c.token_end - c.token_start for c in scores[0].chunks) == 253


def test_the_pipeline_returns_the_note_and_the_lists_and_cli_show_it(tmp_path):
    from reranker.commands.search import result_to_json
    from reranker.pipeline import Pipeline, PipelineConfig
    from reranker.ui.render import before_after_html

    corpus = build_corpus(
        [Document(f"d{i}", f"Document {i}. " + SENTENCE * (i + 1) + "Tickets about search quality.") for i in range(6)]
    )
    pipeline = Pipeline(corpus, PipelineConfig(cross_encoder=GENERAL, rerank_depth=6), cache_dir=str(tmp_path))
    query = "Context: " + SENTENCE * 12 + QUESTION  # about 230 tokens: long for a 256-token model
    result = pipeline.search(query)
    note = result.input_note
    assert note is not None and note.plan.long_query
    policy = pipeline.input_policy(GENERAL, pipeline.config)
    assert note.blend == blend_for(note.card_blend, note.plan, policy)
    blends = [m for m in result.messages if m.startswith("Reranked scores blend")]
    assert len(blends) == 1 and f"blend {note.blend:g} of the fused score" in blends[0]
    assert note.text in before_after_html(result, corpus).replace("&#x27;", "'")
    assert result_to_json(result, pipeline)["input_note"] == note.text
    short = pipeline.search("bm25 inverse document frequency")
    assert short.input_note is None
    off = pipeline.search(query, input_policy="off")
    assert off.input_note is not None and off.input_note.plan.pair_tokens == 256
