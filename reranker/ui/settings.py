"""The settings a user can change in the page, and what every tab needs to read them and report errors.

`Settings` takes its defaults from `PipelineConfig`: a default is written once, in the pipeline, and
the page follows it. Where the page departs from the pipeline on purpose, the override is a named
constant explained here (`INTERACTIVE_RERANK_DEPTH`). The settings widgets are passed to every event in `SETTING_FIELDS`
order, and `settings_from` turns their values back into `Settings`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import gradio as gr

from reranker.chunking import Aggregation
from reranker.errors import ConfigError, RerankLensError
from reranker.models import KNOWN_BI_ENCODERS, KNOWN_CROSS_ENCODERS, PROJECT_MODEL_INFO, PROJECT_MODELS, is_available_offline
from reranker.pipeline import AUTO, PipelineConfig, default_cross_encoder
from reranker.ui.render import esc

logger = logging.getLogger(__name__)

PIPELINE_DEFAULTS = PipelineConfig()

# The page reranks fewer candidates than the pipeline's default (PipelineConfig.rerank_depth, 50): each
# candidate costs one or more cross-encoder passes, and on a 2-core CPU a depth-50 query takes ~1.4 s on
# the bundled corpus and ~4 s on SciFact (README, Performance). 30 keeps the first answer interactive;
# the Rerank depth slider (up to 200) and a latency budget are there for more.
INTERACTIVE_RERANK_DEPTH = 30

ScoreMode = Literal["raw logit", "sigmoid (0–1)"]
RAW_MODE: ScoreMode = "raw logit"
NORMALIZED_MODE: ScoreMode = "sigmoid (0–1)"
SCORE_MODES: tuple[ScoreMode, ...] = (RAW_MODE, NORMALIZED_MODE)

MODEL_BLEND = "model's recommendation"
BLEND_CHOICES = (MODEL_BLEND, *(f"{w / 10:g}" for w in range(11)))


def blend_weight(value: str | float | None) -> float | None:
    """None (the model card's recommendation) or a weight in [0, 1], from the blend picker's text."""
    if value is None or (isinstance(value, str) and value.strip() in {"", MODEL_BLEND}):
        return None
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"blend must be a number between 0 and 1 or {MODEL_BLEND!r}, not {value!r}") from None


def blend_text(weight: float | None) -> str:
    """The blend picker's text for a weight (None: the model card's recommendation)."""
    return MODEL_BLEND if weight is None else f"{weight:g}"


@dataclass(frozen=True)
class Settings:
    """The pipeline settings a user can change in the page; defaults from `PipelineConfig` but the named overrides."""

    bi_encoder: str = PIPELINE_DEFAULTS.bi_encoder
    cross_encoder: str = PIPELINE_DEFAULTS.cross_encoder or "none"
    retrieval_depth: int = PIPELINE_DEFAULTS.retrieval_depth
    rrf_k: int = PIPELINE_DEFAULTS.rrf_k
    rerank_depth: int = INTERACTIVE_RERANK_DEPTH
    top_n: int = PIPELINE_DEFAULTS.top_n
    chunk_tokens: int = PIPELINE_DEFAULTS.chunk_tokens
    chunk_overlap: int = PIPELINE_DEFAULTS.chunk_overlap
    aggregation: Aggregation = PIPELINE_DEFAULTS.aggregation
    score_mode: ScoreMode = RAW_MODE
    interpolation: str | float = blend_text(PIPELINE_DEFAULTS.interpolation)  # MODEL_BLEND or a weight in [0, 1]
    budget_ms: float = PIPELINE_DEFAULTS.latency_budget_ms or 0.0  # 0 = no budget, as the page's number box says

    @property
    def normalized(self) -> bool:
        return self.score_mode == NORMALIZED_MODE

    def overrides(self, **changes: Any) -> dict[str, Any]:
        """Keyword overrides for `Pipeline.search`."""
        values = {
            "bi_encoder": (self.bi_encoder or PIPELINE_DEFAULTS.bi_encoder).strip(),
            "cross_encoder": (self.cross_encoder or AUTO).strip(),
            "retrieval_depth": int(self.retrieval_depth),
            "rrf_k": int(self.rrf_k),
            "rerank_depth": int(self.rerank_depth),
            "top_n": int(self.top_n),
            "chunk_tokens": int(self.chunk_tokens),
            "chunk_overlap": int(self.chunk_overlap),
            "aggregation": self.aggregation,
            "interpolation": blend_weight(self.interpolation),
            "latency_budget_ms": float(self.budget_ms) if self.budget_ms else None,
        }
        values.update(changes)
        return values


SETTING_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Settings))


def settings_from(values: tuple[Any, ...]) -> Settings:
    """Settings from the widgets' values, given in `SETTING_FIELDS` order."""
    return Settings(**dict(zip(SETTING_FIELDS, values, strict=True)))


def model_choices(cross: bool) -> list[tuple[str, str]]:
    """(label, value) pairs for a model picker, saying which models work offline here."""
    choices: list[tuple[str, str]] = []
    if cross:
        best = default_cross_encoder()
        choices.append((f"auto — best available ({best or 'none offline: stops after fusion'})", AUTO))
        for name in PROJECT_MODELS:
            info = PROJECT_MODEL_INFO.get(name, "fine-tuned in this project")
            choices.append((f"{name} — {info}", name))
        known = KNOWN_CROSS_ENCODERS
    else:
        known = KNOWN_BI_ENCODERS
    for model_id, description in known:
        where = "offline ✓" if is_available_offline(model_id) else "needs the hub"
        choices.append((f"{model_id} — {description} ({where})", model_id))
    if cross:
        choices.append(("none — stop after fusion", "none"))
    return choices


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Package errors -> gr.Error with their message; anything else -> logged + a generic gr.Error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except RerankLensError as exc:
            raise gr.Error(page_message(exc), title=_error_title(exc), duration=30, print_exception=False) from None
        except Exception:  # the page must never show a traceback
            logger.exception("unexpected error in %s", getattr(fn, "__name__", "callback"))
            raise gr.Error(
                "Something went wrong on the server; the details are in its log. Try again or change a setting."
            ) from None

    return wrapper


def page_message(exc: Exception) -> str:
    """The message as the page's toast shows it (it renders HTML): escaped, line breaks kept."""
    return esc(str(exc)).replace("\n", "<br>")


def _error_title(exc: RerankLensError) -> str:
    names = {"ModelUnavailableError": "Model not available", "DataError": "Data problem", "ConfigError": "Check the input"}
    return names.get(type(exc).__name__, "Cannot do that")
