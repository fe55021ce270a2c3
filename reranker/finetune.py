"""Fine-tune a cross-encoder on a dataset's relevance judgments, with hard negatives from our own first stage.

Each labelled (query, relevant document) pair becomes a group: the positive plus `negatives` documents
sampled from the fused (BM25 + dense, RRF) top `candidates` of that query, never a labelled positive.
The model is trained with softmax cross-entropy over each group (the positive should win its group;
Nogueira & Cho 2019, "Passage Re-ranking with BERT", and the localized contrastive estimation of
Gao et al., ECIR 2021), through the sentence-transformers CrossEncoderTrainer.

Queries are split deterministically by a seeded hash of their id into a held-out part that training
never sees (for `eval --queries-file`), a dev part for before/after figures, and the training part.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from reranker.corpus import Corpus, Dataset, Qrels, load_dataset
from reranker.errors import ConfigError, DataError, RerankLensError
from reranker.models import DEFAULT_BI_ENCODER, resolve_model
from reranker.types import RankedList

logger = logging.getLogger(__name__)

MIN_LABELLED_PAIRS = 8
CARD_FILE = "README.md"
META_FILE = "finetune.json"
HELDOUT_FILE = "heldout_queries.txt"
DEV_FILE = "dev_queries.txt"
CHECKPOINT_DIR = "checkpoints"
WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that decides a fine-tuning run (saved in the model card)."""

    datasets: tuple[str, ...]
    out: str
    base: str = DEFAULT_BI_ENCODER
    split: str = "train"
    epochs: float = 2.0
    max_length: int = 256
    negatives: int = 7
    candidates: int = 30
    dev_fraction: float = 0.1
    holdout_fraction: float = 0.2
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
    overwrite: bool = False
    resume: bool = False
    keep_checkpoints: bool = False
    threads: int | None = None

    def validate(self) -> None:
        if not self.datasets:
            raise ConfigError("give at least one --dataset with relevance judgments")
        if self.epochs <= 0:
            raise ConfigError("--epochs must be above 0 (2 is a good start)")
        if self.max_length < 32:
            raise ConfigError("--max-length must be at least 32 tokens (256 is a good start)")
        if self.negatives < 1:
            raise ConfigError("--negatives must be at least 1 (7 is a good start)")
        if self.candidates <= self.negatives:
            raise ConfigError("--candidates (fused list depth to sample negatives from) must exceed --negatives")
        if not 0.0 <= self.dev_fraction < 0.5 or not 0.0 <= self.holdout_fraction < 0.5:
            raise ConfigError("--dev-fraction and --holdout-fraction must each be in [0, 0.5)")
        if self.groups_per_step < 1:
            raise ConfigError("--groups-per-step must be at least 1")


@dataclass(frozen=True)
class Group:
    """One training example: a query, its relevant document first, then hard negatives."""

    query: str
    docs: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class QuerySplit:
    train: tuple[str, ...]
    dev: tuple[str, ...]
    heldout: tuple[str, ...]


@dataclass
class Mined:
    """Training material from one dataset: its corpus, qrels and fused candidates per query."""

    name: str
    dataset: Dataset
    qrels: Qrels
    split: QuerySplit
    fused: dict[str, RankedList] = field(default_factory=dict)


def split_queries(query_ids: Sequence[str], dev_fraction: float, holdout_fraction: float, seed: int) -> QuerySplit:
    """Deterministic split by a seeded hash of each id: stable under reordering and added queries."""
    parts: dict[str, list[str]] = {"train": [], "dev": [], "heldout": []}
    for qid in query_ids:
        u = int(hashlib.sha256(f"{seed}:{qid}".encode()).hexdigest()[:12], 16) / 16**12
        part = "heldout" if u < holdout_fraction else "dev" if u < holdout_fraction + dev_fraction else "train"
        parts[part].append(qid)
    return QuerySplit(tuple(parts["train"]), tuple(parts["dev"]), tuple(parts["heldout"]))


def load_training_dataset(path: str, split: str) -> tuple[Dataset, Qrels]:
    """A dataset with judgments for `split` that point at known queries and documents."""
    dataset = load_dataset(path)
    if not dataset.qrels:
        raise DataError(
            "this dataset has no relevance judgments; fine-tuning needs a BEIR folder with "
            f"queries.jsonl and qrels/{split}.tsv (query-id, corpus-id, score)",
            path=path,
        )
    qrels = dataset.split_qrels(split)
    for problem in dataset.problems:
        logger.warning("%s: %s", path, problem)
    known = {
        qid: {doc: grade for doc, grade in docs.items() if doc in dataset.corpus and grade > 0}
        for qid, docs in qrels.items()
        if qid in dataset.queries
    }
    known = {qid: docs for qid, docs in known.items() if docs}
    dropped = [p for p in dataset.problems if f"{split}.tsv" in p]
    if not known and dropped:
        raise DataError(
            f"no usable judgments in split {split!r}: {'; '.join(dropped)}. Check that queries.jsonl, "
            "corpus.jsonl and the qrels come from the same dataset (qrels point at missing documents or queries)",
            path=path,
        )
    return dataset, known


def mine_candidates(
    dataset: Dataset,
    queries: Sequence[str],
    *,
    depth: int,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, RankedList]:
    """The project's own fused list (BM25 + dense, RRF, pipeline defaults) per query: the negatives' pool.

    Same stages as `Pipeline.search` with `cross_encoder=None`, but the queries are embedded in batches.
    """
    from reranker.bm25 import BM25Retriever, Tokenizer
    from reranker.dense import SCORE_LABEL, DenseRetriever
    from reranker.fusion import reciprocal_rank_fusion
    from reranker.pipeline import PipelineConfig
    from reranker.types import Hit

    config = PipelineConfig(cross_encoder=None, retrieval_depth=max(100, depth))
    k = min(config.retrieval_depth, len(dataset.corpus))
    bm25 = BM25Retriever(dataset.corpus, backend=config.bm25_backend, tokenizer=Tokenizer(stemmer=config.stemmer))
    dense = DenseRetriever(dataset.corpus, config.bi_encoder, index=config.dense_index)
    texts = [" ".join(dataset.queries[qid].split()) for qid in queries]
    vectors = dense.loaded.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
    scores, indices = dense.index.search(vectors, k)
    ids = [doc.id for doc in dataset.corpus.documents]
    fused = {}
    for row, (qid, text) in enumerate(zip(queries, texts, strict=True)):
        dense_hits = tuple(
            Hit(doc_id=ids[i], rank=r, score=float(sc), stage="dense")
            for r, (sc, i) in enumerate(zip(scores[row], indices[row], strict=True), start=1)
            if i >= 0
        )
        lists = {"bm25": bm25.search(text, k), "dense": RankedList("dense", dense_hits, SCORE_LABEL)}
        weights = {"bm25": config.bm25_weight, "dense": config.dense_weight}
        fused[qid] = reciprocal_rank_fusion(lists, k=config.rrf_k, weights=weights)
        if progress:
            progress(row + 1, len(queries))
    return fused


def build_groups(mined: Mined, query_ids: Sequence[str], config: FinetuneConfig, rng: random.Random) -> list[Group]:
    """One group per labelled positive: positive first, then negatives sampled from the fused top."""
    corpus: Corpus = mined.dataset.corpus
    groups = []
    for qid in query_ids:
        judged = mined.qrels[qid]
        positives = [doc for doc, grade in judged.items() if grade > 0]
        pool = [h.doc_id for h in mined.fused[qid].hits[: config.candidates] if judged.get(h.doc_id, 0) <= 0]
        if not pool:
            continue
        for pos in positives:
            negatives = rng.sample(pool, min(config.negatives, len(pool)))
            docs = (corpus[pos].full_text, *(corpus[n].full_text for n in negatives))
            groups.append(Group(mined.dataset.queries[qid], docs, mined.name))
    return groups


class GroupSoftmaxLoss:
    """Softmax cross-entropy over each group's scores; the labelled positive is the target class."""

    def __new__(cls, model):  # built lazily so importing this module does not import torch
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
                matrix = torch.full((len(sizes), max(sizes)), -1e4, device=logits.device)
                rows = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes)).to(logits.device)
                cols = torch.cat([torch.arange(n) for n in sizes]).to(logits.device)
                matrix = matrix.index_put((rows, cols), logits)
                target = torch.tensor([int(torch.argmax(lbl)) for lbl in labels], device=logits.device)
                return nn.functional.cross_entropy(matrix, target)

            def get_config_dict(self) -> dict:
                return {"target": "labelled positive of each group"}

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


def is_cross_encoder(path: str) -> bool:
    """True if a model directory already has a sequence-classification (ranking) head."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or [])


def dev_metrics(
    spec: str | None,
    mined: Sequence[Mined],
    *,
    depth: int,
    max_length: int | None,
    weights: Sequence[float] = (0.0, 0.3, 0.5),
) -> dict[str, float]:
    """nDCG@10 on the dev queries: fused, and reranked (top `depth`) at a few interpolation weights.

    Scores go through the same CrossEncoderReranker (token windows, max aggregation) as `eval`;
    with `spec=None` only the fused figure is computed.
    """
    from reranker.cross_encoder import CrossEncoderReranker
    from reranker.evaluation.metrics import evaluate_run, stage_run
    from reranker.fusion import interpolate
    from reranker.types import PipelineResult

    reranker = CrossEncoderReranker(spec, max_length=max_length, cache=None) if spec else None
    qrels: Qrels = {}
    results: dict[str, dict[str, PipelineResult]] = {f"{w:g}": {} for w in weights}
    for m in mined:
        for qid in m.split.dev:
            key = f"{m.name}/{qid}"
            qrels[key] = m.qrels[qid]
            fused = m.fused[qid]
            if reranker is None:
                results[f"{weights[0]:g}"][key] = PipelineResult(m.dataset.queries[qid], {"fused": fused}, (), (), 10)
                continue
            reranked = reranker.rerank(m.dataset.queries[qid], fused, m.dataset.corpus, depth=depth).ranked
            for w in weights:
                stages = {"fused": fused, "reranked": interpolate(reranked, fused, w)}
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


def finetune(config: FinetuneConfig, *, command: str = "") -> dict:
    """Run one fine-tuning: mine, split, train, evaluate dev before/after, save model + card. Returns the metadata.

    `command` is the command line that asked for it, recorded in the model card (the CLI passes its own).
    """
    config.validate()
    started = time.time()
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    mined: list[Mined] = []
    for path in config.datasets:
        dataset, qrels = load_training_dataset(path, config.split)
        ids = list(qrels)
        if config.max_queries:
            ids = ids[: config.max_queries]
            qrels = {q: qrels[q] for q in ids}
        split = split_queries(ids, config.dev_fraction, config.holdout_fraction, config.seed)
        mined.append(Mined(Path(path).name or path, dataset, qrels, split))
    pairs = sum(sum(1 for g in m.qrels[q].values() if g > 0) for m in mined for q in m.split.train)
    if pairs < config.min_pairs:
        raise DataError(
            f"found {pairs} labelled (query, relevant document) pairs in the training part of split "
            f"{config.split!r}; fine-tuning needs at least {config.min_pairs}. Add judgments, or lower "
            "--dev-fraction/--holdout-fraction"
        )
    out = prepare_output(config)
    base = resolve_model(config.base)
    for m in mined:
        m.fused = mine_candidates(
            m.dataset, [*m.split.train, *m.split.dev], depth=config.candidates, progress=_progress(f"mining {m.name}")
        )
    for m in mined:
        (out / split_file_name(HELDOUT_FILE, m.name, mined)).write_text("".join(f"{q}\n" for q in m.split.heldout))
        (out / split_file_name(DEV_FILE, m.name, mined)).write_text("".join(f"{q}\n" for q in m.split.dev))

    rng = random.Random(config.seed)
    rounds = math.ceil(config.epochs)
    per_round = [g for m in mined for g in build_groups(m, m.split.train, config, random.Random(config.seed))]
    groups: list[Group] = []
    for r in range(rounds):  # fresh negatives for every pass over the data
        batch = [g for m in mined for g in build_groups(m, m.split.train, config, random.Random(config.seed + r))]
        rng.shuffle(batch)
        groups += batch
    groups = groups[: round(config.epochs * len(per_round))]
    total_steps = math.ceil(len(groups) / config.groups_per_step)
    logger.warning(
        "training on %d groups (%d labelled pairs, %d queries, %.3g epochs): %d steps of %d groups",
        len(groups),
        pairs,
        sum(len(m.split.train) for m in mined),
        config.epochs,
        total_steps,
        config.groups_per_step,
    )

    if is_cross_encoder(base.path):
        before = dev_metrics(base.path, mined, depth=config.dev_depth, max_length=config.max_length)
    else:  # a bi-encoder backbone has no ranking head yet: only the fused list has a "before"
        before = dev_metrics(None, mined, depth=config.dev_depth, max_length=config.max_length)
    logger.warning("dev nDCG@10 before training: %s", before)

    model = _train(config, base.path, groups, total_steps, out)
    interrupted = model is None
    if interrupted:
        from sentence_transformers import CrossEncoder

        last = _last_checkpoint(out)
        if last is None:
            raise RerankLensError("interrupted before the first checkpoint; nothing was saved")
        model = CrossEncoder(str(last), max_length=config.max_length)
    _save_model(model, out)
    after = dev_metrics(str(out), mined, depth=config.dev_depth, max_length=config.max_length)
    logger.warning("dev nDCG@10 after training: %s", after)
    best_weight = max((0.0, 0.3, 0.5), key=lambda w: after.get(f"reranked@interp{w:g}", -1.0)) if after else 0.0
    meta = {
        "base": config.base,
        "base_path": base.path,
        "datasets": [
            {
                "path": str(Path(m.dataset.path).resolve()) if m.dataset.path else m.name,
                "name": m.name,
                "split": config.split,
                "queries": {"train": len(m.split.train), "dev": len(m.split.dev), "heldout": len(m.split.heldout)},
            }
            for m in mined
        ],
        "labelled_pairs": pairs,
        "groups": len(groups),
        "steps": total_steps,
        "config": {k: v for k, v in asdict(config).items() if k not in {"overwrite", "resume", "out"}},
        "dev_before": before,
        "dev_after": after,
        "recommended_interpolation": best_weight,
        "interrupted": interrupted,
        "wall_seconds": round(time.time() - started),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "trainer": "sentence_transformers.cross_encoder.CrossEncoderTrainer with a group softmax cross-entropy loss",
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (out / CARD_FILE).write_text(model_card(meta))
    if not interrupted and not config.keep_checkpoints:
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    from reranker.project_models import remember_finetuned

    remember_finetuned(out)
    return meta


def _train(config: FinetuneConfig, base_path: str, groups: list[Group], total_steps: int, out: Path):
    """Train with CrossEncoderTrainer; returns the model, or None when stopped by Ctrl-C."""
    import torch
    from datasets import Dataset as HFDataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments

    torch.manual_seed(config.seed)
    model = CrossEncoder(base_path, num_labels=1, max_length=config.max_length)
    train_data = HFDataset.from_dict(
        {
            "query": [g.query for g in groups],
            "docs": [list(g.docs) for g in groups],
            "label": [[1.0] + [0.0] * (len(g.docs) - 1) for g in groups],
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
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
    )
    trainer = CrossEncoderTrainer(
        model=model,
        args=args,
        train_dataset=train_data,
        loss=GroupSoftmaxLoss(model),
        optimizers=_optimizer(model, config, total_steps),
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
        f"- `{d['path']}`, split `{d['split']}`: {d['queries']['train']} training, {d['queries']['dev']} dev, "
        f"{d['queries']['heldout']} held-out queries (ids in `{split_file_name(HELDOUT_FILE, d['name'], meta['datasets'])}`)"
        for d in meta["datasets"]
    )
    return f"""# Cross-encoder fine-tuned locally with Rerank Lens

- Base model: `{meta["base"]}`
- Date: {meta["date"]}
- Trained with: {meta["trainer"]}
- Command: `{meta.get("command") or "finetune()"}`
- Wall time: {meta["wall_seconds"]} s{" (interrupted: the weights are the last checkpoint)" if meta.get("interrupted") else ""}

## Data

{data}

{meta["labelled_pairs"]} labelled pairs became {meta["groups"]} groups ({cfg["epochs"]} passes, each with freshly
sampled negatives): the relevant document plus {cfg["negatives"]} hard negatives sampled from the project's own
fused top {cfg["candidates"]} (BM25 + dense, RRF), never a labelled positive.

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
    (Path(model_dir) / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (Path(model_dir) / CARD_FILE).write_text(model_card(meta))
    return meta


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
