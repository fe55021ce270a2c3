"""How a cross-encoder is loaded and reads its input, written once.

`CrossEncoderSettings` is the constructor argument of `CrossEncoderReranker`, the key the pipeline caches
loaded rerankers by, and what a Ray actor receives (reranker.engines.jobs.ScorerSpec). `PipelineConfig` and
`Reranker` inherit its fields (keyword-only, so their own fields keep their places), the CLI derives its
options from them, and `validate` is the one check of every value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import KW_ONLY, dataclass
from typing import Any

from reranker.chunking import AGGREGATIONS, Aggregation
from reranker.errors import ConfigError
from reranker.speed import PRECISIONS, Precision, check_device

MIN_CHUNK_TOKENS = 16
MAX_LENGTH_RANGE = (32, 8192)
# Window caps keep one query interactive: at ~25-40 pairs/s on two CPU cores, 24 windows (~7,000 tokens
# with the default 400-token windows and 100 overlap) per document and 300 per query bound a query to
# seconds, where a 100k-token document alone would be 1,120 windows (~16 s on this machine).
MAX_WINDOWS_PER_DOCUMENT = 24
MAX_WINDOWS_PER_QUERY = 300


@dataclass(frozen=True)
class CrossEncoderSettings:
    """The settings of one loaded cross-encoder and the way it windows documents.

    Attributes:
        batch_size: (query, window) pairs per forward pass.
        max_length: Tokens the cross-encoder reads per (query, window) pair; None keeps the model's own limit.
        chunk_tokens: Tokens per window a long document is split into for the cross-encoder.
        chunk_overlap: Tokens consecutive windows share.
        aggregation: A document's score from its window scores: max, mean or first.
        trust_remote_code: Let model repositories run their own code.
        precision: Cross-encoder arithmetic; auto picks the fastest one that keeps rankings on this machine.
        device: Where models run: auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda or cuda:N.
        max_windows_per_document: Token windows scored per document at most; a longer document is cut, with a note.
        max_windows_per_query: Token windows scored per query at most; later documents keep their first window.
        allow_untrained_head: Load a checkpoint without a trained relevance head (e.g. a bi-encoder): it ranks at random.
    """

    _: KW_ONLY  # keyword-only: a config that inherits these keeps its own fields' places
    batch_size: int = 32
    max_length: int | None = None
    chunk_tokens: int = 400
    chunk_overlap: int = 100
    aggregation: Aggregation = "max"
    trust_remote_code: bool = False
    precision: Precision = "auto"
    device: str = "auto"  # auto: a CUDA GPU when torch sees one, else the CPU
    max_windows_per_document: int | None = MAX_WINDOWS_PER_DOCUMENT
    max_windows_per_query: int | None = MAX_WINDOWS_PER_QUERY
    allow_untrained_head: bool = False

    def validate(self) -> None:
        """Raise ConfigError (its `field` names the setting) for the first value out of range."""
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, not {self.batch_size!r}", field="batch_size")
        low, high = MAX_LENGTH_RANGE
        if self.max_length is not None and not low <= self.max_length <= high:
            raise ConfigError(
                f"max_length (tokens the cross-encoder reads per pair) must be between {low} and {high}, not {self.max_length}",
                field="max_length",
            )
        if self.chunk_tokens < MIN_CHUNK_TOKENS:
            raise ConfigError(f"chunk_tokens must be at least {MIN_CHUNK_TOKENS}, not {self.chunk_tokens}", field="chunk_tokens")
        if not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ConfigError(
                f"chunk_overlap must be between 0 and chunk_tokens − 1 ({self.chunk_tokens - 1}), not {self.chunk_overlap}",
                field="chunk_overlap",
            )
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(
                f"aggregation must be one of {', '.join(AGGREGATIONS)}, not {self.aggregation!r}", field="aggregation"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}", field="precision")
        check_device(self.device)
        check_window_caps(self.max_windows_per_document, self.max_windows_per_query)

    def cross_encoder_settings(self) -> CrossEncoderSettings:
        """These settings alone, from any config that inherits them (the pipeline's, the API's)."""
        return settings_from(self)


def settings_from(source: Any, **changes: Any) -> CrossEncoderSettings:
    """The `CrossEncoderSettings` fields of `source` (any object with those attributes), `changes` applied."""
    values = {f.name: getattr(source, f.name) for f in dataclasses.fields(CrossEncoderSettings)}
    return CrossEncoderSettings(**{**values, **changes})


def check_window_caps(per_document: int | None, per_query: int | None) -> None:
    for name, value in (("max_windows_per_document", per_document), ("max_windows_per_query", per_query)):
        if value is not None and value < 1:
            raise ConfigError(f"the window cap {name} must be at least 1 (or none for no cap), not {value}", field=name)
