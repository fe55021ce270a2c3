"""The settings a user can change in the page, and what every tab needs to read them and report errors.

`Settings` takes its defaults from `PipelineConfig`: a default is written once, in the pipeline, and
the page follows it. Where the page departs from the pipeline on purpose, the override is a named
constant explained here (`INTERACTIVE_RERANK_DEPTH`). The settings widgets are passed to every event in `SETTING_FIELDS`
order, and `settings_from` turns their values back into `Settings`. `named_settings` names those values
for API clients (`bi_encoder`, `rerank_depth`, ... instead of `param_4`), and `SETTING_HELP` describes
each one.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import gradio as gr

from reranker.chunking import Aggregation
from reranker.commands.arguments import field_docs
from reranker.errors import ConfigError, RerankLensError
from reranker.models import KNOWN_BI_ENCODERS, KNOWN_CROSS_ENCODERS, PROJECT_MODEL_INFO, PROJECT_MODELS, is_available_offline
from reranker.pipeline import AUTO, PipelineConfig, default_cross_encoder
from reranker.ui.render import esc

logger = logging.getLogger(__name__)

PIPELINE_DEFAULTS = PipelineConfig()

# The page reranks fewer candidates than the pipeline's default (PipelineConfig.rerank_depth, 50): each
# candidate costs one or more cross-encoder passes, and on a 2-core CPU a depth-50 query takes ~1.4 s on
# the bundled corpus and ~4 s on SciFact (benchmarks/README.md). 30 keeps the first answer interactive;
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
    """The pipeline settings a user can change in the page; defaults from `PipelineConfig` but the named overrides.

    A field means what `PipelineConfig`'s attribute of the same name says, except these, whose values the
    page (and its API) writes differently:

    Attributes:
        cross_encoder: Reranker: a hub id, a local directory, "auto" (the best one available here) or "none"
            to stop after fusion.
        score_mode: Scores of the cross-encoder as shown: "raw logit", or "sigmoid (0–1)".
        blend: `PipelineConfig.blend` as the page writes it: "0" to "1", or "model's recommendation"
            (a fine-tuned model card's weight, 0 for other models).
        latency_budget_ms: Milliseconds for a whole query; the rerank depth shrinks to fit. 0: no budget.
    """

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
    blend: str | float = blend_text(PIPELINE_DEFAULTS.blend)  # MODEL_BLEND or a weight in [0, 1]
    latency_budget_ms: float = PIPELINE_DEFAULTS.latency_budget_ms or 0.0  # 0 = no budget, as the page's number box says

    @property
    def normalized(self) -> bool:
        return self.score_mode == NORMALIZED_MODE

    def overrides(self, **changes: Any) -> dict[str, Any]:
        """Keyword overrides for `Pipeline.search`: every field under its `PipelineConfig` name (derived, so a
        field added here reaches the pipeline), in the type the pipeline takes; `changes` win."""
        values = {}
        for f in dataclasses.fields(self):
            if f.name in PAGE_ONLY:
                continue
            convert = PAGE_CONVERSIONS.get(f.name) or _config_conversion(f.name)
            values[f.name] = convert(getattr(self, f.name))
        values.update(changes)
        return values


# Settings fields that are about the page itself, not the pipeline. Every other field has its PipelineConfig name.
PAGE_ONLY = frozenset({"score_mode"})
# Settings fields whose page values need more than a type conversion.
PAGE_CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "blend": blend_weight,
    "latency_budget_ms": lambda value: float(value) if value else None,  # 0 = no budget, as the page's number box says
}


# The inverse: PipelineConfig values as those widgets write them.
PAGE_WRITES: dict[str, Callable[[Any], Any]] = {
    "blend": blend_text,
    "latency_budget_ms": lambda value: float(value or 0),
}


def page_values(config_values: Mapping[str, Any]) -> dict[str, Any]:
    """The `Settings` fields among `PipelineConfig` values (e.g. a configuration's `@name=value` settings), as
    the page's widgets write them."""
    return {
        name: PAGE_WRITES.get(name, lambda value: value)(value)
        for name, value in config_values.items()
        if name in SETTING_FIELDS and name not in PAGE_ONLY
    }


def _config_conversion(name: str) -> Callable[[Any], Any]:
    """The page value of `PipelineConfig.name` as the pipeline takes it: numbers from the page's floats, model
    names trimmed (empty: the pipeline's default), anything else as it is."""
    hint = typing.get_type_hints(PipelineConfig).get(name)
    if hint is None:
        raise TypeError(f"Settings.{name} is no PipelineConfig field: name it as PipelineConfig does, or add it to PAGE_ONLY")
    if hint in (int, float):
        return hint
    if hint in (str, str | None):
        default = getattr(PIPELINE_DEFAULTS, name)
        return lambda value: (value or default or "").strip()
    return lambda value: value


SETTING_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Settings))
# What each setting means, for API clients: PipelineConfig's attribute lines, with Settings' own where they differ.
SETTING_HELP: dict[str, str] = {
    name: text for name, text in {**field_docs(PipelineConfig), **field_docs(Settings)}.items() if name in SETTING_FIELDS
}


def settings_from(values: tuple[Any, ...]) -> Settings:
    """Settings from the widgets' values, given in `SETTING_FIELDS` order."""
    return Settings(**dict(zip(SETTING_FIELDS, values, strict=True)))


def named_settings(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Name a handler's trailing values for Gradio: `names`, then every setting.

    A handler written `fn(corpus_key, query, *rest, progress=gr.Progress())` gets the values of its event's
    inputs in `rest` (`names`' widgets, then the settings widgets in `SETTING_FIELDS` order). Gradio names an
    API parameter after the function's parameter in its place, so `*rest` reached API clients as
    `param_2 … param_13`. The decorated handler has the signature `(corpus_key, query, *names,
    *SETTING_FIELDS, progress=gr.Progress())` and calls `fn` as before. Its keyword parameters after
    `*rest` (progress, request) become ordinary ones too: Gradio fills in only those, and before this the
    page's progress messages and a handler's `gr.Request` were silently never passed.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)
        parameters = list(signature.parameters.values())
        rest = next((i for i, p in enumerate(parameters) if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
        if rest is None:
            raise TypeError(f"{fn.__name__} takes no *rest for the settings to name")
        hints = typing.get_type_hints(fn)
        setting_hints = typing.get_type_hints(Settings)
        leading = parameters[:rest]
        trailing = [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in parameters[rest + 1 :]]
        named = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names]
        named += [
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=setting_hints[name])
            for name in SETTING_FIELDS
        ]
        if any(p.default is inspect.Parameter.empty for p in trailing):
            raise TypeError(f"{fn.__name__}: the parameters after *rest need defaults")
        new = signature.replace(parameters=[*leading, *named, *trailing])
        passed_on = [p.name for p in trailing]

        def call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            bound = new.bind(*args, **kwargs)
            bound.apply_defaults()
            values = bound.arguments
            given = [values[p.name] for p in leading] + [values[p.name] for p in named]
            return fn(*given, **{name: values[name] for name in passed_on})

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                yield from call(args, kwargs)
        else:

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return call(args, kwargs)

        wrapper.__signature__ = new  # type: ignore[attr-defined]
        wrapper.__annotations__ = {**hints, **{p.name: p.annotation for p in named if p.annotation is not p.empty}}
        return wrapper

    return decorate


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
