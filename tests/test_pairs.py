"""Pair inputs built from token ids reproduce the tokenizer's own pair encoding exactly."""

from __future__ import annotations

import pytest

from reranker.models import resolve_model
from reranker.pairs import PairTemplate, length_batches
from tests.conftest import BUNDLED_MODEL, SEED_DOCUMENTS, SEED_QUERY


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(BUNDLED_MODEL).path)


def test_template_rebuilds_the_tokenizers_pair_encoding(tokenizer):
    template = PairTemplate.from_tokenizer(tokenizer)
    assert template is not None and template.types == (0, 0, 0, 1, 1)
    for doc in SEED_DOCUMENTS:
        q = tokenizer(SEED_QUERY, add_special_tokens=False)["input_ids"]
        d = tokenizer(doc.full_text, add_special_tokens=False)["input_ids"]
        expected = tokenizer(SEED_QUERY, doc.full_text)
        assert template.build(q, d) == (expected["input_ids"], expected["token_type_ids"])


def test_batches_are_padded_with_a_mask(tokenizer):
    template = PairTemplate.from_tokenizer(tokenizer)
    features = template.batch([([5, 6], [7]), ([5], [8, 9, 10, 11])])
    assert features["input_ids"].shape == (2, 8)
    assert features["attention_mask"].sum(dim=1).tolist() == [6, 8]
    assert features["input_ids"][0, 6:].tolist() == [tokenizer.pad_token_id] * 2


def test_a_layout_that_cannot_be_reproduced_falls_back_to_text():
    class Odd:  # puts the document before the query: not `specials q specials d specials`
        pad_token_id = 0

        def __call__(self, text, pair=None, add_special_tokens=True):
            ids = {"what is attention": [1, 2], "attention weighs values by similarity": [3, 4]}
            return {"input_ids": [9, *ids[pair], 8, *ids[text]] if pair else ids[text]}

    assert PairTemplate.from_tokenizer(Odd()) is None


def test_length_batches_group_similar_lengths_longest_first():
    assert length_batches([3, 10, 1, 7], 2) == [[1, 3], [0, 2]]


def test_length_batches_respect_a_token_budget_after_padding():
    # Longest first; a batch's padded size is its first item's length times its size.
    assert length_batches([100, 60, 90, 300, 80], 32, max_tokens=200) == [[3], [0, 2], [4, 1]]
    assert length_batches([10] * 5, 2, max_tokens=1000) == [[0, 1], [2, 3], [4]]
    assert length_batches([500], 8, max_tokens=100) == [[0]]  # an item over the budget still gets a batch
