"""Fine-tune a cross-encoder on relevance judgments, with hard negatives from our own first stage.

Each labelled (query, relevant document) pair becomes a group: the positive plus `negatives` documents
sampled from the first stage's top `candidates` for that query (BM25, dense, or both fused by RRF;
see `reranker.mining`), never a labelled positive. Several datasets mix, each with a cap and a repeat
count. The model is trained with softmax cross-entropy over each group (the positive should win its
group; Nogueira & Cho 2019, "Passage Re-ranking with BERT", and the localized contrastive estimation of
Gao et al., ECIR 2021), through the sentence-transformers CrossEncoderTrainer. With a `teacher`, the
targets are the teacher's scores instead (listwise KL distillation over the same groups), and
`student_layers` keeps only the base's first layers, for a faster sibling.

The same loop runs on the CPU (tests, small runs) and on a CUDA GPU (bf16 autocast, DataLoader
workers, larger batches). Queries are split deterministically by a seeded hash of their id into a
held-out part that training never sees (for `eval --queries-file`), a dev part for before/after
figures and the recommended blend, and the training part.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from reranker.cache import atomic_write_text
from reranker.corpus import Qrels
from reranker.errors import ConfigError, DataError, RerankLensError
from reranker.mining import (
    NEGATIVE_SOURCES,
    DatasetSpec,
    Group,
    Mined,
    NegativeSource,
    load_groups,
    mine,
    prepare,
    save_groups,
    training_groups,
)
from reranker.models import DEFAULT_BI_ENCODER, has_ranking_head, resolve_model
from reranker.project_models import CARD_FILE, META_FILE

logger = logging.getLogger(__name__)

MIN_LABELLED_PAIRS = 8
HELDOUT_FILE = "heldout_queries.txt"
DEV_FILE = "dev_queries.txt"
GROUPS_FILE = "groups.json.gz"
CHECKPOINT_DIR = "checkpoints"
WEIGHTS = "model.safetensors"
BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5)
# What a groups file decides about its groups (recorded in its metadata by `mine`).
MINED_FIELDS = (
    "datasets",
    "split",
    "epochs",
    "negatives",
    "negatives_from",
    "candidates",
    "dev_fraction",
    "holdout_fraction",
    "seed",
)


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that decides a fine-tuning run (saved in the model card).

    `datasets` are `PATH[,max=N][,repeat=R][,negatives=SOURCE][,dev=N]` (see `mining.DatasetSpec`).
    """

    out: str
    datasets: tuple[str, ...] = ()  # none when training on `groups` mined earlier
    base: str = DEFAULT_BI_ENCODER
    split: str = "train"
    epochs: float = 2.0
    max_length: int = 256
    negatives: int = 7
    negatives_from: NegativeSource = "fused"
    candidates: int = 30
    dev_fraction: float = 0.1
    holdout_fraction: float = 0.2
    dev_queries: int | None = None
    seed: int = 42
    groups_per_step: int = 4
    lr_encoder: float = 6e-5
    lr_head: float = 1e-3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    freeze_word_embeddings: bool = True
    save_steps: int = 50
    dev_depth: int = 30
    max_queries: int | None = None
    min_pairs: int = MIN_LABELLED_PAIRS
    groups: str | None = None
    teacher: str | None = None
    student_layers: int | None = None
    temperature: float = 1.0
    dataloader_workers: int = 4
    overwrite: bool = False
    resume: bool = False
    keep_checkpoints: bool = False
    threads: int | None = None

    def validate(self) -> None:
        if not self.datasets and not self.groups:
            raise ConfigError("give at least one --dataset with relevance judgments (or --groups FILE from `mine`)")
        for text in self.datasets:
            DatasetSpec.parse(text)
        if self.epochs <= 0:
            raise ConfigError("--epochs must be above 0 (2 is a good start)")
        if self.max_length < 32:
            raise ConfigError("--max-length must be at least 32 tokens (256 is a good start)")
        if self.negatives < 1:
            raise ConfigError("--negatives must be at least 1 (7 is a good start)")
        if self.negatives_from not in NEGATIVE_SOURCES:
            raise ConfigError(f"--negatives-from must be one of {', '.join(NEGATIVE_SOURCES)}")
        if self.candidates <= self.negatives:
            raise ConfigError("--candidates (first-stage depth to sample negatives from) must exceed --negatives")
        if not 0.0 <= self.dev_fraction < 0.5 or not 0.0 <= self.holdout_fraction < 0.5:
            raise ConfigError("--dev-fraction and --holdout-fraction must each be in [0, 0.5)")
        if self.groups_per_step < 1:
            raise ConfigError("--groups-per-step must be at least 1")
        if self.student_layers is not None and self.student_layers < 1:
            raise ConfigError("--student-layers must be at least 1")
        if self.temperature <= 0:
            raise ConfigError("--temperature must be above 0")

    def specs(self) -> list[DatasetSpec]:
        return [DatasetSpec.parse(text) for text in self.datasets]


class GroupLoss:
    """Listwise loss over each group's scores.

    Without soft targets: softmax cross-entropy with the labelled positive (first document) as the
    target class. With a teacher's scores as labels: KL(softmax(teacher / T) || softmax(student / T)) * T^2
    (listwise distillation; Hinton et al. 2015).
    """

    def __new__(cls, model, *, distill: bool = False, temperature: float = 1.0):  # lazily: no torch at import
        import torch
        from sentence_transformers.util import batch_to_device
        from torch import nn

        class _Loss(nn.Module):
            def __init__(self, model) -> None:
                super().__init__()
                self.model = model

            def forward(self, inputs, labels, prompt=None, task=None):
                queries, docs_list = inputs
                pairs = [(q, d) for q, docs in zip(queries, docs_list, strict=True) for d in docs]
                tokens = batch_to_device(self.model.preprocess(pairs, prompt=prompt, task=task), self.model.device)
                logits = self.model(tokens)["scores"].view(-1).float()
                sizes = [len(docs) for docs in docs_list]
                rows = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes)).to(logits.device)
                cols = torch.cat([torch.arange(n) for n in sizes]).to(logits.device)
                matrix = torch.full((len(sizes), max(sizes)), -1e4, device=logits.device).index_put((rows, cols), logits)
                if not distill:
                    target = torch.tensor([int(torch.argmax(torch.as_tensor(lbl))) for lbl in labels], device=logits.device)
                    return nn.functional.cross_entropy(matrix, target)
                teacher = torch.full_like(matrix, -1e4)
                flat = torch.cat([torch.as_tensor(lbl, dtype=torch.float32)[:n] for lbl, n in zip(labels, sizes, strict=True)])
                teacher = teacher.index_put((rows, cols), flat.to(logits.device))
                t = temperature
                return nn.functional.kl_div(
                    nn.functional.log_softmax(matrix / t, dim=1),
                    nn.functional.log_softmax(teacher / t, dim=1),
                    log_target=True,
                    reduction="batchmean",
                ) * (t * t)

            def get_config_dict(self) -> dict:
                return {"target": "teacher scores (listwise KL)" if distill else "labelled positive of each group"}

        return _Loss(model)


def prepare_output(config: FinetuneConfig) -> Path:
    out = Path(config.out).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory path")
    if out.exists() and any(out.iterdir()) and not (config.overwrite or config.resume):
        raise ConfigError(f"--out {out} already exists; pass --overwrite to replace it or --resume to continue its checkpoints")
    if out.exists() and config.overwrite and not config.resume:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def dev_metrics(
    spec: str | None,
    mix: Sequence[Mined],
    *,
    depth: int,
    max_length: int | None,
    weights: Sequence[float] = BLEND_WEIGHTS,
) -> dict[str, float]:
    """nDCG@10 on the dev queries: fused, and reranked (top `depth`) at a few interpolation weights.

    Scores go through the same CrossEncoderReranker (token windows, max aggregation) as `eval`;
    with `spec=None` only the fused figure is computed.
    """
    from reranker.cross_encoder import CrossEncoderReranker
    from reranker.evaluation.metrics import evaluate_run, stage_run
    from reranker.fusion import blend
    from reranker.types import PipelineResult

    reranker = (
        CrossEncoderReranker(spec, max_length=max_length, cache=None, precision="fp32", allow_untrained_head=True)
        if spec
        else None
    )
    qrels: Qrels = {}
    results: dict[str, dict[str, PipelineResult]] = {f"{w:g}": {} for w in weights}
    for m in mix:
        for qid in m.split.dev:
            key = f"{m.name}/{qid}"
            qrels[key] = m.positives[qid]
            fused = m.fused(qid)
            if reranker is None:
                results[f"{weights[0]:g}"][key] = PipelineResult(m.dataset.queries[qid], {"fused": fused}, (), (), 10)
                continue
            reranked = reranker.rerank(m.dataset.queries[qid], fused, m.dataset.corpus, depth=depth).ranked
            for w in weights:
                stages = {"fused": fused, "reranked": blend(reranked, fused, w)}
                results[f"{w:g}"][key] = PipelineResult(m.dataset.queries[qid], stages, (), (), 10)
    if not qrels:
        return {}
    first = next(iter(results.values()))
    out = {"queries": float(len(qrels)), "fused": evaluate_run(qrels, stage_run(first, "fused"), ("ndcg@10",))["ndcg@10"]}
    for w, res in results.items():
        if reranker is None:
            break
        out[f"reranked@interp{w}"] = evaluate_run(qrels, stage_run(res, "reranked"), ("ndcg@10",))["ndcg@10"]
    return {k: round(v, 4) for k, v in out.items()}


def _optimizer(model, config: FinetuneConfig, total_steps: int):
    import torch
    from transformers import get_linear_schedule_with_warmup

    head, encoder_decay, encoder_plain = [], [], []
    for name, param in model.named_parameters():
        if config.freeze_word_embeddings and name.endswith("word_embeddings.weight"):
            param.requires_grad_(False)
            continue
        if "classifier" in name or "pooler" in name:
            head.append(param)
        elif name.endswith("bias") or "LayerNorm" in name:
            encoder_plain.append(param)
        else:
            encoder_decay.append(param)
    optimizer = torch.optim.AdamW(
        [
            {"params": head, "lr": config.lr_head, "weight_decay": 0.0},
            {"params": encoder_decay, "lr": config.lr_encoder, "weight_decay": config.weight_decay},
            {"params": encoder_plain, "lr": config.lr_encoder, "weight_decay": 0.0},
        ]
    )
    warmup = int(config.warmup_ratio * total_steps)
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


def _progress(label: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            logger.warning("%s: %d/%d", label, done, total)

    return report


def _fields_of(config: FinetuneConfig, *names: str) -> dict[str, object]:
    """The config's values of `names`, as keyword arguments for a function that takes them under those names."""
    return {name: getattr(config, name) for name in names}


def prepare_mix(config: FinetuneConfig) -> list[Mined]:
    """Every dataset of the mix loaded and split; refuses a mix with too few labelled pairs to train on."""
    config.validate()
    split_settings = _fields_of(config, "split", "dev_fraction", "holdout_fraction", "seed", "max_queries", "dev_queries")
    mix = [prepare(spec, **split_settings) for spec in config.specs()]
    pairs = sum(len(m.positives[q]) for m in mix for q in m.split.train)
    if pairs < config.min_pairs:
        raise DataError(
            f"found {pairs} labelled (query, relevant document) pairs in the training part of split "
            f"{config.split!r}; fine-tuning needs at least {config.min_pairs}. Add judgments, or lower "
            "--dev-fraction/--holdout-fraction"
        )
    return mix


def mine_groups(config: FinetuneConfig, mix: Sequence[Mined]) -> tuple[list[Group], dict]:
    """Mine every dataset's first-stage lists, then every pass's groups: (groups, metadata incl. the splits)."""
    for m in mix:
        mine(m, negatives_from=config.negatives_from, candidates=config.candidates, progress=_progress(f"mining {m.name}"))
    groups, per_pass = training_groups(mix, **_fields_of(config, "epochs", "negatives", "negatives_from", "candidates", "seed"))
    datasets = [_dataset_meta(m, text, config) for m, text in zip(mix, config.datasets, strict=True)]
    return groups, {"datasets": datasets, "groups_per_pass": per_pass}


def finetune(config: FinetuneConfig, *, command: str = "") -> dict:
    """Run one fine-tuning: mine (or read mined groups), train, evaluate dev before/after, save model + card.

    Returns the metadata written to the card. `command` is the command line that asked for it, recorded
    in the model card (the CLI passes its own).
    """
    config.validate()
    started = time.time()
    import torch

    from reranker.speed import physical_cores

    # Every core: the first stage may have lowered torch's threads while other work was runnable.
    torch.set_num_threads(config.threads or physical_cores())
    if config.groups:
        mix: list[Mined] = []
        groups, mined_meta = load_groups(config.groups)
        out = prepare_output(config)
    else:
        mix = prepare_mix(config)
        out = prepare_output(config)
        groups, mined_meta = mine_groups(config, mix)
        mined_meta["config"] = {k: getattr(config, k) for k in MINED_FIELDS}
        save_groups(out / GROUPS_FILE, groups, mined_meta)
    for d in mined_meta["datasets"]:
        for base, key in ((HELDOUT_FILE, "heldout_ids"), (DEV_FILE, "dev_ids")):
            name = split_file_name(base, d["name"], mined_meta["datasets"])
            (out / name).write_text("".join(f"{q}\n" for q in d[key]))
    total_steps = math.ceil(len(groups) / config.groups_per_step)
    logger.warning(
        "training on %d groups (%.3g epochs of %d): %d steps of %d groups",
        len(groups),
        config.epochs,
        mined_meta.get("groups_per_pass", len(groups)),
        total_steps,
        config.groups_per_step,
    )
    base = resolve_model(config.base)
    base_path = base.path
    scratch = None
    if config.student_layers:
        scratch = tempfile.TemporaryDirectory(prefix="rerank-lens-student-")
        base_path = truncated_copy(base.path, config.student_layers, Path(scratch.name))
    before = dev_metrics(
        base_path if has_ranking_head(base_path) else None, mix, depth=config.dev_depth, max_length=config.max_length
    )
    logger.warning("dev nDCG@10 before training: %s", before)
    labels = teacher_scores(config.teacher, groups, config.max_length) if config.teacher else None
    torch.set_num_threads(config.threads or physical_cores())

    model = _train(config, base_path, groups, labels, total_steps, out)
    if scratch is not None:
        scratch.cleanup()
    interrupted = model is None
    if interrupted:
        from sentence_transformers import CrossEncoder

        last = _last_checkpoint(out)
        if last is None:
            raise RerankLensError("interrupted before the first checkpoint; nothing was saved")
        model = CrossEncoder(str(last), max_length=config.max_length)
    _save_model(model, out)
    after = dev_metrics(str(out), mix, depth=config.dev_depth, max_length=config.max_length)
    logger.warning("dev nDCG@10 after training: %s", after)
    best_weight = max(BLEND_WEIGHTS, key=lambda w: after.get(f"reranked@interp{w:g}", -1.0)) if after else 0.0
    meta = {
        "base": config.base,
        "base_path": base.path,
        "datasets": [{k: v for k, v in d.items() if not k.endswith("_ids")} for d in mined_meta["datasets"]],
        "labelled_pairs": sum(d.get("labelled_pairs", 0) for d in mined_meta["datasets"]),
        "groups": len(groups),
        "steps": total_steps,
        # Trained from a groups file: how the groups were mined is that file's, not this command's defaults.
        "config": {k: v for k, v in asdict(config).items() if k not in {"overwrite", "resume", "out"}}
        | {k: v for k, v in mined_meta.get("config", {}).items() if k in MINED_FIELDS},
        "device": _device_name(),
        "dev_before": before,
        "dev_after": after,
        "recommended_interpolation": best_weight,
        "interrupted": interrupted,
        "wall_seconds": round(time.time() - started),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "trainer": "sentence_transformers.cross_encoder.CrossEncoderTrainer with a listwise "
        + ("KL distillation loss" if config.teacher else "group softmax cross-entropy loss"),
    }
    atomic_write_text(out / META_FILE, json.dumps(meta, indent=2) + "\n")
    atomic_write_text(out / CARD_FILE, model_card(meta))
    if not interrupted and not config.keep_checkpoints:
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    from reranker.project_models import remember_finetuned

    remember_finetuned(out)
    return meta


def _dataset_meta(m: Mined, spec_text: str, config: FinetuneConfig) -> dict:
    return {
        "path": os.path.abspath(m.dataset.path) if m.dataset.path else m.name,
        "name": m.name,
        "spec": spec_text,
        "split": config.split,
        "negatives_from": m.spec.negatives_from or config.negatives_from,
        "repeat": m.spec.repeat,
        "labelled_pairs": sum(len(m.positives[q]) for q in m.split.train),
        "queries": {"train": len(m.split.train), "dev": len(m.split.dev), "heldout": len(m.split.heldout)},
        "heldout_ids": list(m.split.heldout),
        "dev_ids": list(m.split.dev),
    }


def _device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {os.cpu_count()} cores"


def truncated_copy(model_dir: str, layers: int, scratch: Path) -> str:
    """A copy of a cross-encoder (or backbone) that keeps only its first `layers` transformer layers."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(model_dir, num_labels=1)
    module = model[0].model
    backbone = getattr(module, module.base_model_prefix)
    if layers >= len(backbone.encoder.layer):
        raise ConfigError(f"--student-layers {layers}: the base has only {len(backbone.encoder.layer)} layers")
    backbone.encoder.layer = backbone.encoder.layer[:layers]
    module.config.num_hidden_layers = layers
    target = scratch / "student"
    model.save_pretrained(str(target))
    return str(target)


def teacher_scores(teacher: str, groups: Sequence[Group], max_length: int) -> list[list[float]]:
    """The teacher cross-encoder's raw score for every (query, document) of every group."""
    import torch

    from reranker.cross_encoder import CrossEncoderReranker

    # fp32 targets; a GPU takes far larger batches than the CPU's cache-friendly 64.
    batch_size = 512 if torch.cuda.is_available() else 64
    reranker = CrossEncoderReranker(teacher, max_length=max_length, cache=None, precision="fp32", batch_size=batch_size)
    pairs = [(g.query, d) for g in groups for d in g.docs]
    logger.warning("scoring %d pairs with the teacher %s", len(pairs), teacher)
    flat = reranker.score_pairs(pairs)
    scores, cursor = [], 0
    for g in groups:
        scores.append(flat[cursor : cursor + len(g.docs)])
        cursor += len(g.docs)
    return scores


def _train(
    config: FinetuneConfig,
    base_path: str,
    groups: list[Group],
    labels: list[list[float]] | None,
    total_steps: int,
    out: Path,
):
    """Train with CrossEncoderTrainer; returns the model, or None when stopped by Ctrl-C."""
    import torch
    from datasets import Dataset as HFDataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments

    torch.manual_seed(config.seed)
    cuda = torch.cuda.is_available()
    model = CrossEncoder(base_path, num_labels=1, max_length=config.max_length)
    train_data = HFDataset.from_dict(
        {
            "query": [g.query for g in groups],
            "docs": [list(g.docs) for g in groups],
            "label": labels if labels is not None else [[1.0] + [0.0] * (len(g.docs) - 1) for g in groups],
        }
    )
    args = CrossEncoderTrainingArguments(
        output_dir=str(out / CHECKPOINT_DIR),
        num_train_epochs=1,  # the data already holds every pass, each with fresh negatives
        per_device_train_batch_size=config.groups_per_step,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        logging_steps=10,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        # On a GPU: bf16 autocast and tokenising in DataLoader workers keep the device busy.
        bf16=cuda and torch.cuda.is_bf16_supported(),
        dataloader_num_workers=config.dataloader_workers if cuda else 0,
        use_cpu=not cuda,
        disable_tqdm=False,
    )
    loss = GroupLoss(model, distill=labels is not None, temperature=config.temperature)
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=train_data, loss=loss, optimizers=_optimizer(model, config, total_steps)
    )
    resume = bool(config.resume and _last_checkpoint(out))
    try:
        trainer.train(resume_from_checkpoint=True if resume else None)
    except KeyboardInterrupt:
        logger.warning("stopped by Ctrl-C; keeping the checkpoints in %s", out / CHECKPOINT_DIR)
        return None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            last = _last_checkpoint(out)
            raise RerankLensError(
                f"the disk filled up while saving a checkpoint in {out / CHECKPOINT_DIR}; "
                f"{'the last complete checkpoint is ' + str(last) if last else 'no checkpoint was complete'}. "
                "Free some space and rerun with --resume"
            ) from None
        raise
    return model


def _last_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint whose weights were written completely."""
    folder = out / CHECKPOINT_DIR
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file() and (p / WEIGHTS).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _save_model(model, out: Path) -> None:
    try:
        model.save_pretrained(str(out))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise RerankLensError(
                f"the disk filled up while saving the model to {out}; free some space and rerun with --resume"
            ) from None
        raise


def split_file_name(base: str, dataset_name: str, datasets: Sequence) -> str:
    """`heldout_queries.txt` for one dataset; `<dataset>.heldout_queries.txt` each when several are mixed."""
    return f"{dataset_name}.{base}" if len(datasets) > 1 else base


def model_card(meta: Mapping) -> str:
    """A readable card: what was trained from what, how, and how well it did on dev queries."""
    cfg = meta["config"]
    before, after = meta.get("dev_before") or {}, meta.get("dev_after") or {}

    def cell(metrics: Mapping, key: str) -> str:
        return f"{metrics[key]:.4f}" if key in metrics else "— (no ranking head yet)"

    rows = "\n".join(f"| {key} | {cell(before, key)} | {cell(after, key)} |" for key in after if key != "queries")
    data = "\n".join(
        f"- `{d.get('spec', d['path'])}`, split `{d['split']}`: {d['queries']['train']} training, {d['queries']['dev']} dev, "
        f"{d['queries']['heldout']} held-out queries (ids in `{split_file_name(HELDOUT_FILE, d['name'], meta['datasets'])}`); "
        f"negatives from {d.get('negatives_from', 'fused')}, each group {d.get('repeat', 1)}x per pass"
        for d in meta["datasets"]
    )
    distilled = (
        f"\nTargets: the scores of the teacher `{cfg['teacher']}` (listwise KL, temperature {cfg.get('temperature', 1.0):g}), "
        "not the labels."
        if cfg.get("teacher")
        else ""
    )
    student = f" Student: the base's first {cfg['student_layers']} layers." if cfg.get("student_layers") else ""
    return f"""# Cross-encoder fine-tuned locally with Rerank Lens

- Base model: `{meta["base"]}`
- Date: {meta["date"]}
- Trained with: {meta["trainer"]}
- Command: `{meta.get("command") or "finetune()"}`
- Device: {meta.get("device", "cpu")}
- Wall time: {meta["wall_seconds"]} s{" (interrupted: the weights are the last checkpoint)" if meta.get("interrupted") else ""}

## Data

{data}

{meta["labelled_pairs"]} labelled pairs became {meta["groups"]} groups ({cfg["epochs"]} passes, each with freshly
sampled negatives): the relevant document plus {cfg["negatives"]} hard negatives sampled from the top {cfg["candidates"]}
of the project's own first stage (the list named per dataset: BM25, dense, both, or both fused by RRF) and any
labelled negatives, never a labelled positive.{distilled}{student}

## Hyperparameters

max length {cfg["max_length"]} tokens, {cfg["groups_per_step"]} groups per step, {meta["steps"]} steps, AdamW with
lr {cfg["lr_head"]:g} for the new classification head and the pooler and {cfg["lr_encoder"]:g} for the encoder,
linear warm-up over {cfg["warmup_ratio"]:.0%} of the steps then linear decay, weight decay {cfg["weight_decay"]:g},
word embeddings {"frozen" if cfg["freeze_word_embeddings"] else "trained"}, seed {cfg["seed"]}.

## Dev metrics (nDCG@10, {int(after.get("queries", 0))} dev queries, reranking the fused top {cfg["dev_depth"]})

`interpN` blends N of the z-normalised fused score into the cross-encoder score.

| ranking | before | after |
|---|---|---|
{rows}

Recommended interpolation weight: {meta["recommended_interpolation"]:g}.
{_heldout_section(meta.get("heldout"))}"""


def _heldout_section(heldout: Mapping | None) -> str:
    if not heldout:
        return ""
    rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in heldout["ndcg@10"].items() if value is not None)
    command = f"\nMeasured with `{heldout['command']}`.\n" if heldout.get("command") else ""
    return f"""
## Held-out queries (nDCG@10, {heldout["queries"]} queries training and dev never saw)

| ranking | nDCG@10 |
|---|---|
{rows}

`auto` is what the pipeline runs with this model by default: the cross-encoder score blended with the
recommended share of the fused score; `alone` (or `reranked`) is the cross-encoder's own ranking.
{command}"""


def read_card_metadata(model_dir: str | Path) -> dict | None:
    """The metadata a fine-tuned model directory carries, or None for other models."""
    path = Path(model_dir) / META_FILE
    if not path.is_file():
        return None
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    return None


def record_dev(model_dir: str | Path, reports: Sequence[Mapping]) -> dict:
    """Store dev figures measured after training (`eval --json` on the dev query files, as for a run trained
    from `--groups`) and recommend the blend with the best dev nDCG@10.

    Each report's configurations named `fused` and `interpW` (W a blend weight, e.g. `interp0.3`) count;
    a configuration measured in several reports (one per dataset) is averaged weighted by their queries.
    """
    meta = read_card_metadata(model_dir)
    if meta is None:
        raise ConfigError(f"{model_dir} has no {META_FILE}; it was not written by `finetune`")
    totals: dict[str, list[float]] = {}
    for report in reports:
        queries = int(report.get("queries") or 0)
        for name, configuration in (report.get("configurations") or {}).items():
            key = "fused" if name == "fused" else _blend_key(name)
            value = (configuration.get("metrics") or {}).get("ndcg@10")
            if key is None or value is None or not queries:
                continue
            total = totals.setdefault(key, [0.0, 0.0])
            total[0] += value * queries
            total[1] += queries
    blends = {key: total[0] / total[1] for key, total in totals.items() if key != "fused"}
    if not blends:
        raise ConfigError("no configuration named interpW (e.g. interp0, interp0.3) in the dev reports")
    after = {key: round(total[0] / total[1], 4) for key, total in totals.items()}
    after["queries"] = max(total[1] for total in totals.values())
    meta["dev_after"] = after
    best = max(blends, key=blends.__getitem__)
    meta["recommended_interpolation"] = float(best.removeprefix("reranked@interp"))
    atomic_write_text(Path(model_dir) / META_FILE, json.dumps(meta, indent=2) + "\n")
    atomic_write_text(Path(model_dir) / CARD_FILE, model_card(meta))
    return meta


def _blend_key(name: str) -> str | None:
    try:
        weight = float(name.removeprefix("interp")) if name.startswith("interp") else None
    except ValueError:
        return None
    return None if weight is None or not 0.0 <= weight <= 1.0 else f"reranked@interp{weight:g}"


def record_heldout(model_dir: str | Path, report: Mapping) -> dict:
    """Store held-out figures from `eval --json` (fused vs reranked nDCG@10) in a model's card and metadata."""
    meta = read_card_metadata(model_dir)
    if meta is None:
        raise ConfigError(f"{model_dir} has no {META_FILE}; it was not written by `finetune`")
    stages = report.get("stages") or {}
    configurations = report.get("configurations") or {}
    # With --compare, "stages.reranked" repeats the first reranking configuration: list each configuration once.
    first_stages = {k: v for k, v in stages.items() if not (configurations and k == "reranked")}
    table = {**first_stages, **{k: v.get("metrics", v) for k, v in configurations.items()}}
    meta["heldout"] = {
        "queries": report.get("queries"),
        "command": report.get("command", ""),
        "ndcg@10": {name: metrics.get("ndcg@10") for name, metrics in table.items() if isinstance(metrics, Mapping)},
    }
    ndcg = meta["heldout"]["ndcg@10"]
    meta["heldout"]["fused"] = ndcg.get("fused")
    # "alone": the cross-encoder's own ranking; "auto": what the pipeline runs by default (the card's blend).
    meta["heldout"]["reranked"] = ndcg.get("alone", ndcg.get("reranked"))
    meta["heldout"]["default"] = ndcg.get("auto")
    atomic_write_text(Path(model_dir) / META_FILE, json.dumps(meta, indent=2) + "\n")
    atomic_write_text(Path(model_dir) / CARD_FILE, model_card(meta))
    return meta


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
