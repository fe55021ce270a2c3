"""Shared fixtures. Tests never download: the hub is switched off before any HF import."""

from __future__ import annotations

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
# Uploaded BEIR zips are extracted under the upload folder: never the user's own in a test.
os.environ["RERANK_LENS_UPLOADS"] = tempfile.mkdtemp(prefix="rerank-lens-test-uploads-")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# CI machines differ from run to run (AMX, AVX512-BF16, plain AVX2): every test, and every process
# it starts, sees one plain AVX2 CPU, so `precision="auto"` is fp32 everywhere. Tests of the other
# classes simulate their flags explicitly (tests/test_speed.py).
PLAIN_AVX2_FLAGS = "fpu sse sse2 avx avx2 fma"
os.environ["RERANK_LENS_CPU_FLAGS"] = PLAIN_AVX2_FLAGS
# MKL's strict reproducibility mode, before anything multiplies a matrix, as the run-writing commands ask for it
# (reranker.speed.reproducible_blas): fp32 products, and so scores, do not depend on the number of threads, in
# this process and in every process it starts (Ray workers included).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
# Cross-encoder mechanics are tested on the bundled bi-encoder's real weights with a seeded, untrained
# head: the suite opts in to loading such checkpoints (users must ask; tests/test_guards.py checks that).
os.environ["RERANK_LENS_ALLOW_UNTRAINED_HEAD"] = "1"

import pytest  # noqa: E402

from reranker.corpus import build_corpus  # noqa: E402
from reranker.types import Document  # noqa: E402

BUNDLED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# The seed example: five passages for "What is transformer attention mechanism?".
SEED_DOCUMENTS = (
    Document(
        "attention-def",
        "The attention mechanism in transformers computes, for every token, a weighted sum of value vectors; "
        "the weights come from a softmax over scaled dot products between the token's query and all keys.",
        "Transformer attention",
    ),
    Document(
        "attention-cost",
        "Self-attention compares every token with every other token, so its cost grows quadratically with "
        "sequence length, which limits transformers on long inputs.",
        "Quadratic cost of attention",
    ),
    Document(
        "bert",
        "BERT is a stack of transformer encoder layers pretrained with masked language modelling and next "
        "sentence prediction; each layer combines multi-head self-attention with a feed-forward network.",
        "BERT architecture",
    ),
    Document(
        "rnn",
        "Recurrent neural networks such as LSTMs and GRUs read a sequence one step at a time and carry a hidden "
        "state, an alternative to attention for modelling order.",
        "Recurrent networks",
    ),
    Document(
        "attention-general",
        "In machine learning, attention broadly means letting a model focus on the most relevant parts of its "
        "input, much as people attend to some details and ignore others.",
        "Attention in machine learning",
    ),
)
SEED_QUERY = "What is transformer attention mechanism?"


@pytest.fixture(scope="session", autouse=True)
def _judgments_in_a_temporary_folder(tmp_path_factory):
    """Grades the tests make (the app's, `eval`'s overlay, in this process or the ones it starts) go to a
    temporary folder, never to the user's judgments or the repository."""
    folder = tmp_path_factory.mktemp("judgments")
    previous = os.environ.get("RERANK_LENS_JUDGMENTS")
    os.environ["RERANK_LENS_JUDGMENTS"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("RERANK_LENS_JUDGMENTS", None)
    else:
        os.environ["RERANK_LENS_JUDGMENTS"] = previous


@pytest.fixture(autouse=True)
def _own_upload_folder(tmp_path_factory, monkeypatch):
    """An app state made in a test extracts uploads into a folder of its own: one test's uploads never show
    up in another's corpus list (states made for a whole module share the session's folder)."""
    monkeypatch.setenv("RERANK_LENS_UPLOADS", str(tmp_path_factory.mktemp("uploads")))


@pytest.fixture(scope="session")
def seed_corpus():
    return build_corpus(SEED_DOCUMENTS, name="seed")


@pytest.fixture
def offline_auto(monkeypatch, tmp_path):
    """`"auto"` resolves to a cross-encoder offline: the hub default when cached, else the project's
    fine-tuned model; where neither exists yet, the bundled model is registered as the project model
    for this test, the way the fine-tuned one registers itself. Caches go to a temporary folder."""
    from reranker.models import PROJECT_MODELS, resolve_model
    from reranker.pipeline import default_cross_encoder, resolve_cross_encoder_spec

    monkeypatch.setenv("RERANK_LENS_CACHE", str(tmp_path / "cache"))
    default_cross_encoder.cache_clear()
    if resolve_cross_encoder_spec("auto") is None:
        bundled = resolve_model(BUNDLED_MODEL).path
        monkeypatch.setitem(PROJECT_MODELS, "stand-in-finetuned", lambda: bundled)
        default_cross_encoder.cache_clear()
    yield
    default_cross_encoder.cache_clear()


@pytest.fixture(scope="session")
def seed_pipeline(seed_corpus, tmp_path_factory):
    from reranker.pipeline import Pipeline, PipelineConfig

    cache = tmp_path_factory.mktemp("embeddings")
    return Pipeline(seed_corpus, PipelineConfig(cross_encoder=BUNDLED_MODEL, rerank_depth=5), cache_dir=str(cache))
