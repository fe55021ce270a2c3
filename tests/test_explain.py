"""Score explanations (`reranker.explain`): the sentence splitter's exact offsets, spans that cover the explained
window, occlusion equal to scoring each variant on its own, one forward pass for all variants, integrated
gradients that add up to the score, and, with the default offline cross-encoder, a sentence that answers a
judged query planted among filler gets the largest contribution.

Mechanics run on the bundled MiniLM with an untrained head; quality only on a trained cross-encoder."""

from __future__ import annotations

import doctest
import itertools
import json

import pytest

import reranker.explain as explain_module
from reranker import Document, Reranker
from reranker.corpus import load_dataset
from reranker.cross_encoder import CrossEncoderReranker, ScoreCache
from reranker.errors import ConfigError
from reranker.explain import Explanation, explain, explain_document, sentence_spans
from reranker.models import has_ranking_head
from reranker.pipeline import default_cross_encoder
from tests.conftest import BUNDLED_MODEL, SEED_QUERY
from tests.support import write_beir

LONG = " ".join(
    f"Paragraph {i} covers harbour cranes and container schedules. It was written in spring {1900 + i}." for i in range(30)
)
# Off-topic sentences: village life, farming, weather. None says anything about machine learning or search.
FILLER = (
    "The village bakery opens at six and sells rye loaves until they run out.",
    "Our garden club meets on the first Tuesday of each month in the church hall.",
    "Tomatoes need at least six hours of direct sunlight to ripen well.",
    "The old harbour was rebuilt in stone after the storm of 1881.",
    "Fishing boats still unload their catch on the eastern quay every morning.",
    "A footpath follows the river for nine miles through pasture and woodland.",
    "In autumn the beech trees along the ridge turn copper and gold.",
    "The museum displays farm tools, a blacksmith's forge and a restored cider press.",
    "Local cheese is aged for twelve months in caves cut into the chalk.",
    "The annual fair brings a brass band, a dog show and a tug of war.",
    "Rain is most frequent in November, when westerly winds carry it off the sea.",
    "The railway line closed in 1964, and its embankment is now a cycle route.",
    "Swallows return to nest under the barn roofs in late April.",
    "The parish church has a Norman doorway and a fifteenth-century tower.",
    "Apples from the orchards are pressed into juice at the end of September.",
    "Children learn to sail on the reservoir during the summer holidays.",
    "The market square is paved with cobbles laid more than two centuries ago.",
    "A weekly bus connects the village with the county town on Thursdays.",
    "Sheep graze the water meadows from spring until the first frosts.",
    "The lighthouse keeper's cottage has been turned into a small holiday let.",
)
# Judged test queries of the bundled knowledge corpus, and the one sentence of a grade-2 document that answers each.
PLANTED = {
    "q001": ("k0200", "The attention mechanism at the heart of the Transformer"),
    "q013": ("k0326", "The bi-encoder and the cross-encoder represent a trade-off"),
}


@pytest.fixture(scope="module")
def engine():
    # fp32 pinned and a private cache: scores are compared with the model's own output below.
    return CrossEncoderReranker(
        BUNDLED_MODEL, max_length=128, chunk_tokens=64, chunk_overlap=16, cache=ScoreCache(), precision="fp32"
    )


def test_the_sentence_splitter_keeps_exact_offsets():
    text = (
        "Tides\n  The Moon pulls the sea. Twice a day, e.g. at noon, water rises 3.5 m!  "
        'He said "Stop." Then he left? Yes.\n\nlast line without a stop'
    )
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == [
        "Tides",
        "The Moon pulls the sea.",
        "Twice a day, e.g. at noon, water rises 3.5 m!",
        'He said "Stop."',
        "Then he left?",
        "Yes.",
        "last line without a stop",
    ]
    assert all(0 <= s < e <= len(text) and not text[s].isspace() and not text[e - 1].isspace() for s, e in spans)
    start = text.index("Twice")
    inner = sentence_spans(text, start + 8, text.index("Yes"))  # a window that starts mid-sentence
    assert [text[s:e] for s, e in inner][:2] == ["day, e.g. at noon, water rises 3.5 m!", 'He said "Stop."']
    assert sentence_spans("   ") == []


def test_module_examples_run():
    results = doctest.testmod(explain_module, optionflags=doctest.ELLIPSIS)
    assert results.attempted >= 1 and results.failed == 0


@pytest.mark.parametrize("granularity", ["sentence", "tokens"])
def test_spans_cover_the_explained_window_once_in_text_order(engine, granularity):
    explanation = explain(engine, SEED_QUERY, LONG, granularity=granularity, span_tokens=8)
    window = explanation.window
    assert explanation.windows > 1 and explanation.deciding
    tokens = [t for span in explanation.spans for t in range(span.token_start, span.token_end)]
    assert tokens == list(range(window.token_start, window.token_end))
    for span in explanation.spans:
        assert span.text == LONG[span.start : span.end] and window.start <= span.start < span.end <= window.end
        assert span.unit == "logit change"
    if granularity == "tokens":
        assert {s.token_end - s.token_start for s in explanation.spans[:-1]} == {8}
    else:
        assert all(s.text.endswith(".") for s in explanation.spans[1:-1])
    pieces = explanation.segments()
    assert pieces[0][0] == window.start and pieces[-1][1] == window.end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))


def test_occlusion_equals_scoring_each_variant_on_its_own(engine):
    import torch

    explanation = explain(engine, SEED_QUERY, LONG)
    scores, _, _, _ = engine.score_documents(SEED_QUERY, [Document("x", LONG)])
    window = explanation.window
    assert window == scores[0].chunks[scores[0].deciding_chunk]
    assert explanation.score == pytest.approx(window.raw, abs=1e-5)
    variants = [LONG[window.start : s.start] + LONG[s.end : window.end] for s in explanation.spans]
    with torch.inference_mode():
        direct = engine.model.predict(
            [(SEED_QUERY, LONG[window.start : window.end]), *((SEED_QUERY, v) for v in variants)],
            activation_fn=torch.nn.Identity(),
            batch_size=1,
            show_progress_bar=False,
        )
    expected = [float(direct[0] - d) for d in direct[1:]]
    assert [s.delta for s in explanation.spans] == pytest.approx(expected, abs=1e-4)
    assert explanation.score == pytest.approx(float(direct[0]), abs=1e-4)


def test_all_variants_go_through_one_forward_pass_and_then_come_from_the_cache():
    engine = CrossEncoderReranker(
        BUNDLED_MODEL, max_length=128, chunk_tokens=64, chunk_overlap=16, cache=ScoreCache(), precision="fp32", batch_size=2
    )
    batches: list[int] = []
    hook = engine.model.register_forward_hook(lambda _module, args, _out: batches.append(args[0]["input_ids"].shape[0]))
    try:
        engine.score_documents(SEED_QUERY, [Document("x", LONG)])  # the windows, as a search scores them
        batches.clear()
        explanation = explain(engine, SEED_QUERY, LONG)
        assert len(explanation.spans) > 2 and explanation.inputs == len(explanation.spans) + 1
        # one pass, whatever the reranker's batch size; the unchanged window's score came from the cache
        assert batches == [len(explanation.spans)] and explanation.scored == len(explanation.spans)
        assert explanation.passes == 1 and "in one forward pass" in explanation.how
        batches.clear()
        again = explain(engine, SEED_QUERY, LONG)
        assert again.spans == explanation.spans and batches == [] and again.scored == again.passes == 0
        assert "every score from the cache" in again.how
    finally:
        hook.remove()


def test_another_window_and_bad_options_are_refused_with_the_fix(engine):
    deciding = explain(engine, SEED_QUERY, LONG)
    other = 0 if deciding.window.index else 1
    explained = explain(engine, SEED_QUERY, LONG, window=other)
    assert explained.window.index == other and not explained.deciding
    for kwargs, message in [
        ({"window": 99}, r"window index 99 \(counting from 0\) does not exist"),
        ({"method": "shap"}, "method must be one of occlusion, integrated-gradients"),
        ({"granularity": "words"}, "granularity must be one of sentence, tokens"),
        ({"granularity": "tokens", "span_tokens": 1}, "at least 2 tokens"),
        ({"method": "integrated-gradients", "steps": 1}, "steps must be between 2"),
    ]:
        with pytest.raises(ConfigError, match=message):
            explain(engine, SEED_QUERY, LONG, **kwargs)
    with pytest.raises(ConfigError, match="query is empty"):
        explain(engine, "  ", LONG)
    with pytest.raises(ConfigError, match="text to explain is empty"):
        explain(engine, SEED_QUERY, " \n")


def test_a_document_is_explained_as_the_reranker_reads_it_title_included(engine):
    doc = Document("d", "Attention weighs values. Bread needs yeast.", title="Transformer notes")
    explanation = explain_document(engine, SEED_QUERY, doc)
    assert explanation.text == doc.full_text
    assert [s.text for s in explanation.spans] == ["Transformer notes", "Attention weighs values.", "Bread needs yeast."]
    data = json.loads(json.dumps(explanation.to_json()))
    assert data["unit"] == "logit change" and data["method"] == "occlusion" and data["precision"] == "fp32"
    assert [s["text"] for s in data["spans"]] == [s.text for s in explanation.spans]
    assert data["spans"][1]["delta"] == round(explanation.spans[1].delta, 4)
    assert explanation.top in explanation.spans


@pytest.fixture(scope="module")
def trained() -> Reranker:
    """The default offline cross-encoder (what `auto` resolves to without the hub), which must be a trained one."""
    spec = default_cross_encoder()
    assert spec is not None, "no cross-encoder resolves offline: the shipped models/ artifact should"
    reranker = Reranker(model=spec, precision="fp32")
    assert has_ranking_head(reranker._engine.loaded.resolved.path), f"{spec} has no trained head"
    return reranker


def planted_text(qid: str, position: int) -> tuple[str, str, str]:
    """(query, the answering sentence, filler with that sentence planted at `position`)."""
    dataset = load_dataset("corpora/knowledge")
    doc_id, opening = PLANTED[qid]
    assert dataset.qrels["test"][qid][doc_id] == 2
    text = dataset.corpus[doc_id].text
    sentence = next(text[s:e] for s, e in sentence_spans(text) if text[s:e].startswith(opening))
    return dataset.queries[qid], sentence, " ".join([*FILLER[:position], sentence, *FILLER[position:]])


@pytest.mark.slow
@pytest.mark.parametrize(("qid", "position"), [("q001", 3), ("q001", 16), ("q013", 9), ("q013", 19)])
def test_the_planted_answer_gets_the_largest_contribution(trained, qid, position):
    query, sentence, text = planted_text(qid, position)
    start = text.index(sentence)
    explanation = trained.explain(query, text)
    # The deciding window may begin or end inside the planted sentence: its span there is what is left of it.
    planted = [s for s in explanation.spans if s.start < start + len(sentence) and s.end > start]
    assert len(planted) == 1, "the planted sentence is not in the deciding window"
    others = sorted((s.delta for s in explanation.spans if s is not planted[0]), reverse=True)
    assert planted[0].delta > 0 and explanation.top == planted[0], (planted[0].delta, others[:3])


@pytest.mark.slow
def test_integrated_gradients_add_up_to_the_score_minus_the_baseline(trained):
    query, _, text = planted_text("q013", 2)
    text = " ".join(text.split(" ")[:80])  # a short window keeps the backward pass quick
    occlusion = trained.explain(query, text)
    gradients = trained.explain(query, text, method="integrated-gradients", steps=24)
    assert gradients.method == "integrated-gradients" and gradients.inputs == 26 and gradients.passes == 2  # 16 + 8 steps
    assert [s.text for s in gradients.spans] == [s.text for s in occlusion.spans]
    assert gradients.score == pytest.approx(occlusion.score, abs=1e-3)  # the same model, read through embeddings
    gap = gradients.score - gradients.baseline_score
    assert abs(gap) > 0.1 and abs(gradients.convergence) <= 0.05 * abs(gap) + 0.01
    assert "integrated gradients" in gradients.how and "[PAD]" in gradients.unit_help
    assert isinstance(gradients, Explanation) and gradients.unit == "logit change"


@pytest.mark.slow
def test_the_latency_benchmark_explains_full_windows_and_reports_each_configuration(capsys, tmp_path):
    """`benchmarks/explain.py` (the ≤ 2 s figure lives in its output, not in a timed test) runs and reports."""
    from benchmarks.explain import main

    docs = [Document(f"d{i}", " ".join(FILLER[i : i + 8]), f"Village notes {i}") for i in range(3)]
    queries = {f"q{i}": FILLER[i + 1].split(",")[0] for i in range(3)}
    folder = write_beir(tmp_path / "village", docs, queries, {f"q{i}": {f"d{i}": 2} for i in range(3)})
    argv = ["--dataset", str(folder), "--model", BUNDLED_MODEL, "--max-length", "128", "--window-tokens", "64"]
    argv += ["--windows", "2", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision"] == "fp32" and report["goal_ms"] == 2000.0 and report["machine"]["cores"] >= 1
    assert set(report["configurations"]) == {"occlusion/sentence", "occlusion/tokens"}
    for stats in report["configurations"].values():
        assert stats["windows"] == 2 and stats["window_tokens_mean"] == 64
        assert stats["spans_mean"] > 1 and stats["inputs_mean"] == stats["spans_mean"] + 1
        assert 0 < stats["wall_ms"]["p50"] <= stats["wall_ms"]["max"] and 0 <= stats["within_goal"] <= 2
    assert report["configurations"]["occlusion/tokens"]["spans_mean"] == 64 / 16
