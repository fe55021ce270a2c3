"""scripts/gpu/portable.py: what travels to a lent GPU and back rebuilds the trained model here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from reranker.models import DEFAULT_BI_ENCODER, resolve_model

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("portable", ROOT / "scripts" / "gpu" / "portable.py")
portable = importlib.util.module_from_spec(spec)
spec.loader.exec_module(portable)


def test_backbone_goes_half_and_back_and_a_trained_model_round_trips(tmp_path):
    backbone = Path(resolve_model(DEFAULT_BI_ENCODER).path)
    carried = tmp_path / "carried"
    portable.half(str(backbone), str(carried))
    assert (carried / "tokenizer.json").is_file()
    assert all(v.dtype == torch.float16 for v in load_file(str(carried / "model.safetensors")).values() if v.is_floating_point())
    portable.full(str(carried))
    base = load_file(str(backbone / "model.safetensors"))
    back = load_file(str(carried / "model.safetensors"))
    assert set(back) == set(base) and all(v.dtype != torch.float16 for v in back.values())

    # A "trained" cross-encoder: the backbone's weights moved a little, frozen word embeddings, a new head.
    model = tmp_path / "model"
    (model / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (model / "checkpoints" / "checkpoint-1" / "trainer_state.json").write_text("{}")
    (model / "config.json").write_text("{}")
    generator = torch.Generator().manual_seed(0)

    def moved(key, value):
        frozen = key.endswith(portable.FROZEN) or not value.is_floating_point()
        return value if frozen else value + 0.01 * torch.randn(value.shape, generator=generator)

    trained = {"bert." + k: moved(k, v) for k, v in base.items()}
    trained["classifier.weight"] = torch.randn(1, 384, generator=generator)
    save_file(trained, str(model / "model.safetensors"))

    packed = tmp_path / "packed"
    portable.pack(str(model), str(packed))
    assert not (packed / "checkpoints").exists() and (packed / "config.json").is_file()
    assert not any(k.endswith(portable.FROZEN) for k in load_file(str(packed / "model.safetensors")))
    rebuilt = tmp_path / "rebuilt"
    portable.unpack(str(packed), str(rebuilt))
    again = load_file(str(rebuilt / "model.safetensors"))
    assert set(again) == set(trained)
    assert torch.equal(again["classifier.weight"], trained["classifier.weight"])  # the head travels in float32
    # float16 rounding of the trained weights (relative 2^-11), nothing more; the frozen embeddings are exact.
    assert all(torch.allclose(again[k].float(), v.float(), rtol=1e-3, atol=1e-4) for k, v in trained.items())
    assert not torch.equal(
        again["bert.encoder.layer.0.attention.self.query.weight"], trained["bert.encoder.layer.0.attention.self.query.weight"]
    )
    assert torch.equal(again["bert.embeddings.word_embeddings.weight"], trained["bert.embeddings.word_embeddings.weight"])
