"""Model inputs for (query, window) pairs built from token ids, so no text is tokenised twice.

A document is tokenised once (its ids and character offsets are cached); each window is a slice of
those ids. The pair layout a tokenizer uses ([CLS] q [SEP] d [SEP] with segment ids for BERT,
<s> q </s></s> d </s> for RoBERTa, ...) is learnt once from the tokenizer itself by encoding a probe
pair, and checked: a tokenizer whose layout cannot be reproduced this way falls back to text input.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_PROBE = ("what is attention", "attention weighs values by similarity")


@dataclass(frozen=True)
class PairTemplate:
    """Special tokens around and between the two sequences, and their segment (token type) ids."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    # Segment id of each part (prefix, query, middle, document, suffix); None: the model takes none.
    types: tuple[int, int, int, int, int] | None
    pad_id: int

    @classmethod
    def from_tokenizer(cls, tokenizer) -> PairTemplate | None:
        """The tokenizer's pair layout, or None when it is not `specials + q + specials + d + specials`."""
        q = tokenizer(_PROBE[0], add_special_tokens=False)["input_ids"]
        d = tokenizer(_PROBE[1], add_special_tokens=False)["input_ids"]
        full = tokenizer(*_PROBE)
        ids = list(full["input_ids"])
        start = _find(ids, q, 0)
        end = _find(ids, d, start + len(q)) if start is not None else None
        if start is None or end is None or tokenizer.pad_token_id is None:
            return None
        types = None
        if "token_type_ids" in full:
            t = list(full["token_type_ids"])
            parts = (t[:start], t[start : start + len(q)], t[start + len(q) : end], t[end : end + len(d)], t[end + len(d) :])
            if any(len(set(p)) > 1 for p in parts):
                return None
            types = tuple(p[0] if p else 0 for p in parts)
        template = cls(
            tuple(ids[:start]), tuple(ids[start + len(q) : end]), tuple(ids[end + len(d) :]), types, tokenizer.pad_token_id
        )
        return template if template.build(q, d) == (ids, list(full.get("token_type_ids", [])) or None) else None

    def build(self, query_ids: Sequence[int], doc_ids: Sequence[int]) -> tuple[list[int], list[int] | None]:
        """input_ids (and token_type_ids, if the model takes them) of one pair."""
        ids = [*self.prefix, *query_ids, *self.middle, *doc_ids, *self.suffix]
        if self.types is None:
            return ids, None
        lengths = (len(self.prefix), len(query_ids), len(self.middle), len(doc_ids), len(self.suffix))
        return ids, [t for t, n in zip(self.types, lengths, strict=True) for _ in range(n)]

    def batch(self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> dict:
        """Padded tensors for a batch of (query ids, window ids) pairs (right padding, attention mask)."""
        import torch

        built = [self.build(q, d) for q, d in pairs]
        width = max(len(ids) for ids, _ in built)
        input_ids = torch.full((len(built), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(built), width), dtype=torch.long)
        types = torch.zeros((len(built), width), dtype=torch.long) if self.types is not None else None
        for row, (ids, type_ids) in enumerate(built):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
            if types is not None:
                types[row, : len(ids)] = torch.tensor(type_ids)
        features = {"input_ids": input_ids, "attention_mask": mask}
        if types is not None:
            features["token_type_ids"] = types
        return features


def _find(haystack: list[int], needle: list[int], start: int) -> int | None:
    for i in range(start, len(haystack) - len(needle) + 1):
        if haystack[i : i + len(needle)] == needle:
            return i
    return None


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding stays small.

    With `max_tokens`, a batch also holds at most that many tokens once padded to its longest item
    (always at least one item)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches:
            batch = batches[-1]
            padded = lengths[batch[0]] * (len(batch) + 1)  # longest first: the batch's first item sets its width
            if len(batch) < batch_size and (max_tokens is None or padded <= max_tokens):
                batch.append(i)
                continue
        batches.append([i])
    return batches
