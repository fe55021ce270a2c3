"""Move a backbone to a lent GPU machine and trained weights back, within the device tool's size limits.

Only 64 MiB travel with a call and files come back at 16 MiB each, while the backbone and a fine-tuned
MiniLM-L6 are 91 MB each in float32. The word embeddings (half of the weights) stay frozen in training,
so only the other weights need to come back, and float16 halves what travels either way.

    python scripts/gpu/portable.py half BACKBONE_DIR OUT_DIR     # here: a float16 copy to carry
    python scripts/gpu/portable.py full DIR                      # there: back to float32, in place
    python scripts/gpu/portable.py pack MODEL_DIR OUT_DIR        # there: trained weights minus frozen ones
    python scripts/gpu/portable.py unpack PACK_DIR MODEL_DIR     # here: a full float32 model again

Needs only torch and safetensors (no reranker import: the lent machine runs its own Python).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

WEIGHTS = "model.safetensors"
FROZEN = "word_embeddings.weight"  # finetune keeps it as the backbone has it (--freeze-word-embeddings)


def _copy_small_files(src: Path, dst: Path) -> None:
    """Config, tokenizer, card and split lists; not the weights, nor the checkpoints of an interrupted run."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in src.rglob("*"):
        if "checkpoints" in path.relative_to(src).parts:
            continue
        if path.is_file() and path.name != WEIGHTS and path.stat().st_size < 2_000_000:
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _cast(src: Path, dst: Path, dtype) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(src))
    save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}, str(dst))


def half(src: str, dst: str) -> None:
    import torch

    _copy_small_files(Path(src), Path(dst))
    _cast(Path(src) / WEIGHTS, Path(dst) / WEIGHTS, torch.float16)


def full(folder: str) -> None:
    import torch

    _cast(Path(folder) / WEIGHTS, Path(folder) / WEIGHTS, torch.float32)


def pack(model_dir: str, out_dir: str) -> None:
    """Every weight but the frozen word embeddings; the classification head in float32 (it is tiny)."""
    from safetensors.torch import load_file, save_file

    _copy_small_files(Path(model_dir), Path(out_dir))
    tensors = load_file(str(Path(model_dir) / WEIGHTS))
    kept = {
        k: v if not v.is_floating_point() else v.float() if k.startswith(("classifier.", "bert.pooler.")) else v.half()
        for k, v in tensors.items()
        if not k.endswith(FROZEN)
    }
    save_file({k: v.contiguous() for k, v in kept.items()}, str(Path(out_dir) / WEIGHTS), metadata={"packed": "1"})


def unpack(pack_dir: str, model_dir: str) -> None:
    """The packed weights plus the bundled backbone's word embeddings, as a loadable float32 model."""
    from safetensors.torch import load_file, save_file

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from reranker.models import DEFAULT_BI_ENCODER, resolve_model

    _copy_small_files(Path(pack_dir), Path(model_dir))
    packed = load_file(str(Path(pack_dir) / WEIGHTS))
    backbone = load_file(str(Path(resolve_model(DEFAULT_BI_ENCODER).path) / WEIGHTS))
    state = {k: v.float() if v.is_floating_point() else v for k, v in packed.items()}
    for key, value in backbone.items():
        if key.endswith(FROZEN):
            state["bert." + key] = value.float()
    save_file(state, str(Path(model_dir) / WEIGHTS))


if __name__ == "__main__":
    commands = {"half": half, "full": full, "pack": pack, "unpack": unpack}
    if len(sys.argv) < 3 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
