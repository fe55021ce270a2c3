"""Cross-encoders this project ships as compact artifacts applied to the bundled all-MiniLM-L6-v2 backbone.

An artifact (models/<name>/) holds the fine-tuned weights as differences from the backbone in
float16 (word embeddings stay frozen in training, so they need no delta), the new classification
head and pooler in full float32, the model's configuration, and its model card. On first use it is
rebuilt into a normal cross-encoder directory under ~/.cache/rerank-lens/models/<hash>/, which then
loads like any hub model; nothing is downloaded and nothing is trained.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from reranker.cache import atomic_directory, atomic_write_text
from reranker.cache import cache_root as rerank_lens_cache
from reranker.distribution import bundled
from reranker.input_policy import InputPolicy
from reranker.models import DEFAULT_BI_ENCODER, PROJECT_MODEL_INFO, PROJECT_MODELS, resolve_model

logger = logging.getLogger(__name__)

MODELS_ROOT = bundled("models")
WEIGHTS_FILE = "weights.safetensors"
WEIGHTS_KEY = "model.safetensors"
CARD_FILE = "README.md"  # a fine-tuned model's card, for people
META_FILE = "finetune.json"  # its training record and dev figures, for code (recommended blend, labels)
FULL_PREFIX = "full."
DELTA_PREFIX = "delta."
# Files copied from a fine-tuned model directory into the artifact (weights are handled apart).
ARTIFACT_FILES = (
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer_config.json",
    CARD_FILE,
    META_FILE,
)
# Query-id lists of the splits: one pair per dataset (`<dataset>.heldout_queries.txt` when mixed).
SPLIT_FILE_PATTERNS = ("*heldout_queries.txt", "*dev_queries.txt")
# Tokenizer files come from the backbone, so the artifact stays small.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
FULL_PRECISION = ("classifier.", "pooler.")


def _backbone_key(key: str) -> str:
    return key.removeprefix("bert.")


def export_artifact(model_dir: str | Path, artifact_dir: str | Path, backbone: str = DEFAULT_BI_ENCODER) -> dict:
    """Write a fine-tuned cross-encoder as a compact artifact (float16 deltas against the backbone).

    Returns sizes and the largest absolute rounding error the float16 deltas introduce.
    """
    import torch
    from safetensors.torch import load_file, save_file

    model_dir, artifact_dir = Path(model_dir), Path(artifact_dir)
    trained = load_file(str(model_dir / WEIGHTS_KEY))
    base = load_file(str(Path(resolve_model(backbone).path) / WEIGHTS_KEY))
    tensors: dict[str, torch.Tensor] = {}
    max_error = 0.0
    for key, value in trained.items():
        reference = base.get(_backbone_key(key))
        if reference is None or key.startswith(FULL_PRECISION) or _backbone_key(key).startswith(FULL_PRECISION):
            tensors[FULL_PREFIX + key] = value.float().contiguous()
        elif torch.equal(reference, value):
            continue
        else:
            delta = (value.float() - reference.float()).half()
            max_error = max(max_error, float((reference.float() + delta.float() - value.float()).abs().max()))
            tensors[DELTA_PREFIX + key] = delta.contiguous()
    artifact_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(artifact_dir / WEIGHTS_FILE), metadata={"backbone": backbone, "format": "rerank-lens-delta-v1"})
    split_files = [p.name for pattern in SPLIT_FILE_PATTERNS for p in sorted(model_dir.glob(pattern))]
    for stale in (p for pattern in SPLIT_FILE_PATTERNS for p in artifact_dir.glob(pattern)):
        stale.unlink()  # a re-export must not leave the previous model's split lists behind
    for name in (*ARTIFACT_FILES, *split_files):
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, artifact_dir / name)
    size = sum(p.stat().st_size for p in artifact_dir.iterdir() if p.is_file())
    return {"bytes": size, "tensors": len(tensors), "max_abs_error": max_error}


def build_from_artifact(artifact_dir: str | Path, cache_root: str | Path | None = None) -> Path:
    """A loadable cross-encoder directory rebuilt from an artifact and the bundled backbone (once, cached)."""
    artifact_dir = Path(artifact_dir)
    weights = artifact_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing; the artifact is incomplete (check out models/ again)")
    digest = hashlib.sha256()
    # finetune.json is the card the pipeline reads its blend and long-query policy from: a new card, a new build.
    for name in (WEIGHTS_FILE, "config.json", "config_sentence_transformers.json", "tokenizer_config.json", "finetune.json"):
        if (artifact_dir / name).is_file():
            digest.update((artifact_dir / name).read_bytes())
    root = Path(cache_root) if cache_root else _cache_root()
    target = root / f"{artifact_dir.name}-{digest.hexdigest()[:16]}"
    if (target / WEIGHTS_KEY).is_file():
        return target
    # Only a rebuild needs torch: importing it here would cost the app's page seconds at every start.
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(weights), "pt") as handle:
        backbone = (handle.metadata() or {}).get("backbone", DEFAULT_BI_ENCODER)
    backbone_dir = Path(resolve_model(backbone).path)
    base = load_file(str(backbone_dir / WEIGHTS_KEY))
    stored = load_file(str(weights))
    layers = _layers(artifact_dir)
    state = {}
    full = {k.removeprefix(FULL_PREFIX): v for k, v in stored.items() if k.startswith(FULL_PREFIX)}
    deltas = {k.removeprefix(DELTA_PREFIX): v for k, v in stored.items() if k.startswith(DELTA_PREFIX)}
    for key, value in base.items():
        name = f"bert.{key}"
        if name in full or name in deltas or _layer_index(key) >= layers:  # a student keeps the first layers only
            continue
        state[name] = value
    for name, delta in deltas.items():
        state[name] = (base[_backbone_key(name)].float() + delta.float()).contiguous()
    state.update(full)

    def write(staging: Path) -> None:
        save_file(state, str(staging / WEIGHTS_KEY), metadata={"format": "pt"})
        for name in ARTIFACT_FILES:
            if (artifact_dir / name).is_file():
                shutil.copy2(artifact_dir / name, staging / name)
        for name in TOKENIZER_FILES:
            if (backbone_dir / name).is_file() and not (staging / name).exists():
                shutil.copy2(backbone_dir / name, staging / name)

    atomic_directory(target, write, complete=WEIGHTS_KEY)
    logger.info("built %s from %s and %s", target, artifact_dir, backbone)
    return target


def _layers(model_dir: Path) -> int:
    try:
        return int(json.loads((model_dir / "config.json").read_text())["num_hidden_layers"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1_000


def _layer_index(key: str) -> int:
    """The transformer layer a backbone weight belongs to (-1 for embeddings and the rest)."""
    parts = key.split(".")
    if "layer" in parts:
        at = parts.index("layer") + 1
        if at < len(parts) and parts[at].isdigit():
            return int(parts[at])
    return -1


def _cache_root() -> Path:
    return rerank_lens_cache() / "models"


@dataclass(frozen=True)
class FamilyMember:
    """One model of the project's offline family: its name, its folder under models/, and its role."""

    name: str
    folder: str
    role: str


# The offline family, in the order `auto` tries them when the hub's default is unreachable.
OFFLINE_FAMILY: tuple[FamilyMember, ...] = (
    FamilyMember("rerank-lens/minilm-l6-general", "minilm-l6-general", "general-purpose, the offline default"),
    FamilyMember("rerank-lens/tiny-general", "tiny-general", "fast sibling, the cascade's coarse model"),
    FamilyMember("rerank-lens/minilm-l6-scifact", "minilm-l6-scifact", "SciFact specialist"),
)


def artifact_info(artifact_dir: str | Path, role: str = "") -> str:
    """A one-line card from the artifact's metadata: role, size, what it was trained on, how well it measured."""
    artifact_dir = Path(artifact_dir)
    try:
        meta = json.loads((artifact_dir / META_FILE).read_text())
    except (OSError, ValueError):
        return role or "fine-tuned locally"
    layers = _layers(artifact_dir)
    prefix = f"{role}; " if role else ""
    if layers < 1_000:
        prefix += f"{layers} layers; "
    return prefix + _training_summary(meta)


def _training_summary(meta: dict) -> str:
    names = ", ".join(d.get("name", "?") for d in meta.get("datasets", []))
    weight = meta.get("recommended_interpolation") or 0.0
    heldout = meta.get("heldout") or {}
    if heldout.get("reranked") is not None and heldout.get("fused") is not None:
        blended = heldout.get("default") if weight else None
        figures = (
            f"{blended:.3f} with its recommended blend {weight:g}, {heldout['reranked']:.3f} alone"
            if blended is not None
            else f"{heldout['reranked']:.3f}"
        )
        return (
            f"trained on {names}: held-out nDCG@10 {figures} (fused {heldout['fused']:.3f}, {heldout.get('queries')} queries)"
        )
    dev = meta.get("dev_after") or {}
    if "reranked@interp0" not in dev:
        return f"trained on {names}"
    extra = f", {dev.get(f'reranked@interp{weight:g}', float('nan')):.3f} with interpolation {weight:g}" if weight else ""
    return (
        f"trained on {names}: dev nDCG@10 {dev['reranked@interp0']:.3f}{extra} "
        f"(fused {dev.get('fused', float('nan')):.3f})"
    )


def register(name: str, artifact_dir: Path, role: str = "") -> None:
    """Make an artifact resolvable by name (e.g. in PipelineConfig(cross_encoder=name) and the CLI)."""
    if not (artifact_dir / WEIGHTS_FILE).is_file():
        return
    PROJECT_MODELS[name] = lambda: build_from_artifact(artifact_dir)
    PROJECT_MODEL_INFO[name] = artifact_info(artifact_dir, role)


def _registry_file() -> Path:
    return _cache_root().parent / "finetuned.json"


def remember_finetuned(model_dir: str | Path) -> None:
    """Note a directory `finetune` wrote, so pickers list it next to the shipped model."""
    path = str(Path(model_dir).resolve())
    registry = _registry_file()
    try:
        known = json.loads(registry.read_text()) if registry.is_file() else []
    except (OSError, ValueError):
        known = []
    if path not in known:
        atomic_write_text(registry, json.dumps([*known, path], indent=1))
    register_local(Path(path))


def register_local(model_dir: Path) -> None:
    """Register a fine-tuned model directory under its path, labelled with its model card's dev metrics."""
    if (model_dir / META_FILE).is_file() and (model_dir / WEIGHTS_KEY).is_file():
        PROJECT_MODELS[str(model_dir)] = lambda: model_dir
        PROJECT_MODEL_INFO[str(model_dir)] = artifact_info(model_dir)


def recommended_blend(model_dir: str | Path) -> float | None:
    """The fused-score blend weight a fine-tuned model's card recommends (None if it has no card); the card's
    key is `recommended_interpolation`, the name it had when the shipped cards were written."""
    try:
        return float(json.loads((Path(model_dir) / META_FILE).read_text())["recommended_interpolation"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recommended_input_policy(model_dir: str | Path) -> InputPolicy:
    """The long-query input policy a model card records (`finetune.json` "input_policy"), else the plain layout."""
    try:
        values = json.loads((Path(model_dir) / META_FILE).read_text()).get("input_policy")
    except (OSError, ValueError, AttributeError):
        values = None
    return InputPolicy.from_card(values if isinstance(values, dict) else None)


def _register_all() -> None:
    for member in OFFLINE_FAMILY:
        register(member.name, MODELS_ROOT / member.folder, member.role)
    try:
        known = json.loads(_registry_file().read_text()) if _registry_file().is_file() else []
    except (OSError, ValueError):
        known = []
    for path in known:
        register_local(Path(path))


_register_all()
