"""Fine-tuning: query splits, mined negatives, a tiny real training run, the compact artifact, bad input."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from reranker.errors import ConfigError, DataError, RerankLensError
from reranker.finetune import FinetuneConfig, GroupLoss, finetune, split_file_name
from reranker.mining import DatasetSpec, first_stage_lists, load_groups, prepare, split_queries, training_groups
from tests.support import documents, write_beir

TOPICS = {
    "aspirin": (
        "Aspirin reduces fever and pain",
        "Aspirin inhibits cyclooxygenase, lowering prostaglandins that cause fever and pain.",
    ),
    "insulin": ("Insulin and blood sugar", "Insulin released by the pancreas lets cells take up glucose, lowering blood sugar."),
    "vaccine": ("How vaccines work", "Vaccines expose the immune system to an antigen so that memory B and T cells form."),
    "statins": ("Statins lower cholesterol", "Statins block HMG-CoA reductase in the liver and reduce LDL cholesterol."),
    "antibiotic": ("Antibiotics kill bacteria", "Penicillin weakens the bacterial cell wall; antibiotics do not act on viruses."),
    "sleep": ("Sleep and memory", "During deep sleep the hippocampus replays experiences, consolidating memory."),
    "exercise": ("Exercise and the heart", "Regular aerobic exercise lowers resting heart rate and blood pressure."),
    "coffee": ("Caffeine and alertness", "Caffeine blocks adenosine receptors in the brain, which delays sleepiness."),
    "vitamin-d": ("Vitamin D and bones", "Vitamin D increases calcium absorption in the gut and supports bone density."),
    "smoking": ("Smoking and lung cancer", "Tobacco smoke carries carcinogens that damage the DNA of lung cells."),
    "gluten": ("Coeliac disease", "In coeliac disease gluten triggers an immune reaction that damages the small intestine."),
    "malaria": ("Malaria transmission", "Malaria parasites are carried by Anopheles mosquitoes and infect red blood cells."),
}
QUESTIONS = {
    "aspirin": "how does aspirin lower a fever",
    "insulin": "what hormone lowers blood glucose",
    "vaccine": "how do vaccines create immune memory",
    "statins": "which drugs reduce LDL cholesterol",
    "antibiotic": "do antibiotics work against viruses",
    "sleep": "does sleep help memory consolidation",
    "exercise": "effect of aerobic exercise on blood pressure",
    "coffee": "why does caffeine keep you awake",
    "vitamin-d": "vitamin D and calcium absorption",
    "smoking": "how does smoking cause lung cancer",
    "gluten": "what does gluten do in coeliac disease",
    "malaria": "which mosquito carries malaria",
}


def write_medical(folder: Path, *, split: str = "train", qrels: dict[str, str] | None = None) -> Path:
    """The twelve medical topics as a BEIR folder; each query judges its topic's document (grade 1)."""
    pairs = qrels if qrels is not None else {f"q-{d}": d for d in TOPICS}
    queries = {f"q-{doc_id}": question for doc_id, question in QUESTIONS.items()}
    return write_beir(folder, documents(TOPICS), queries, {q: {d: 1} for q, d in pairs.items()}, split=split)


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch):
    """Embeddings, rebuilt models and the fine-tuned registry go to a temporary folder; registrations are undone."""
    from reranker.models import PROJECT_MODEL_INFO, PROJECT_MODELS

    monkeypatch.setenv("RERANK_LENS_CACHE", str(tmp_path / "cache"))
    models, info = dict(PROJECT_MODELS), dict(PROJECT_MODEL_INFO)
    yield tmp_path / "cache"
    PROJECT_MODELS.clear()
    PROJECT_MODELS.update(models)
    PROJECT_MODEL_INFO.clear()
    PROJECT_MODEL_INFO.update(info)


def tiny_config(data: Path, out: Path, **changes) -> FinetuneConfig:
    settings = dict(
        datasets=(str(data),),
        out=str(out),
        max_length=48,
        negatives=2,
        candidates=4,
        epochs=1.0,
        groups_per_step=4,
        dev_fraction=0.25,
        holdout_fraction=0.0,
        dev_depth=4,
        min_pairs=4,
        save_steps=2,
        seed=3,
    )
    settings.update(changes)
    return FinetuneConfig(**settings)


def test_split_is_deterministic_disjoint_and_near_the_fractions():
    ids = [f"q{i}" for i in range(2000)]
    split = split_queries(ids, 0.1, 0.2, seed=42)
    shuffled = split_queries(list(reversed(ids)), 0.1, 0.2, seed=42)
    assert (set(split.train), set(split.dev), set(split.heldout)) == (
        set(shuffled.train),
        set(shuffled.dev),
        set(shuffled.heldout),
    )
    parts = [set(split.train), set(split.dev), set(split.heldout)]
    assert sum(len(p) for p in parts) == len(ids) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert 0.17 < len(split.heldout) / len(ids) < 0.23 and 0.07 < len(split.dev) / len(ids) < 0.13
    # Adding queries never moves an existing one to another part (the held-out set stays held out).
    grown = split_queries([*ids, "new-1", "new-2"], 0.1, 0.2, seed=42)
    assert set(split.heldout) <= set(grown.heldout)
    assert split_queries(ids, 0.1, 0.2, seed=7).heldout != split.heldout


def test_split_files_are_named_per_dataset_only_when_mixed():
    assert split_file_name("heldout_queries.txt", "scifact", ["scifact"]) == "heldout_queries.txt"
    assert split_file_name("heldout_queries.txt", "scifact", ["scifact", "knowledge"]) == "scifact.heldout_queries.txt"


def test_mined_candidates_are_the_pipelines_fused_list(tmp_path, isolated_cache):
    from reranker.corpus import load_dataset
    from reranker.pipeline import Pipeline, PipelineConfig

    dataset = load_dataset(write_medical(tmp_path / "data"))
    queries = ["q-aspirin", "q-malaria", "q-sleep"]
    mined = first_stage_lists(dataset, queries, sources={"fused"}, depth=5)
    pipeline = Pipeline(dataset.corpus, PipelineConfig(cross_encoder=None, retrieval_depth=100))
    for qid in queries:
        for stage in ("bm25", "dense", "fused"):
            expected = pipeline.search(dataset.queries[qid]).stages[stage]
            assert mined[qid][stage].doc_ids() == expected.doc_ids()
            assert [h.score for h in mined[qid][stage].hits] == pytest.approx([h.score for h in expected.hits], abs=1e-5)
    bm25_only = first_stage_lists(dataset, queries, sources={"bm25"}, depth=5)
    assert set(bm25_only["q-aspirin"]) == {"bm25"}  # no dense index is built for BM25-only mining


def test_dataset_specs_parse_options_and_refuse_bad_ones():
    spec = DatasetSpec.parse("../shared/datasets/squad,max=400,repeat=2,negatives=bm25,dev=0")
    assert (spec.path, spec.max_queries, spec.repeat, spec.negatives_from, spec.dev_queries) == (
        "../shared/datasets/squad",
        400,
        2,
        "bm25",
        0,
    )
    assert spec.name == "squad" and DatasetSpec.parse("corpora/knowledge") == DatasetSpec("corpora/knowledge")
    for bad, message in [
        ("data,cap=3", "unknown option"),
        ("data,repeat=0", "at least 1"),
        ("data,max=many", "whole number"),
        ("data,negatives=random", "negatives must be one of"),
        (",max=3", "give a path first"),
    ]:
        with pytest.raises(ConfigError, match=message):
            DatasetSpec.parse(bad)


def test_caps_sample_training_queries_without_moving_held_out_ones(tmp_path, isolated_cache):
    data = str(write_medical(tmp_path / "data"))
    kwargs = dict(split="train", dev_fraction=0.25, holdout_fraction=0.25, seed=3)
    full = prepare(DatasetSpec(data), **kwargs)
    capped = prepare(DatasetSpec(data, max_queries=2, dev_queries=1), **kwargs)
    assert capped.split.heldout == full.split.heldout
    assert len(capped.split.train) == min(2, len(full.split.train)) and set(capped.split.train) <= set(full.split.train)
    assert len(capped.split.dev) <= 1 and set(capped.split.dev) <= set(full.split.dev)
    assert set(capped.positives) == set(capped.split.train) | set(capped.split.dev)


def test_groups_hold_labelled_negatives_never_a_positive_and_repeat(tmp_path, isolated_cache):
    data = write_medical(tmp_path / "data")
    qrels = (data / "qrels" / "train.tsv").read_text() + "q-aspirin\tcoffee\t0\nq-aspirin\tvaccine\t2\n"
    (data / "qrels" / "train.tsv").write_text(qrels)
    spec = DatasetSpec(str(data), repeat=2, negatives_from="bm25+dense")
    mined = prepare(spec, split="train", dev_fraction=0.0, holdout_fraction=0.0, seed=1)
    from reranker.mining import mine

    mine(mined, negatives_from="fused", candidates=6)
    groups, per_pass = training_groups([mined], epochs=1.0, negatives=5, negatives_from="fused", candidates=6, seed=1)
    assert per_pass == len(groups) == 2 * (len(TOPICS) + 1)  # aspirin has two positives; every group twice
    texts = {doc_id: f"{title}\n{text}" for doc_id, (title, text) in TOPICS.items()}
    for g in groups:
        if g.query == QUESTIONS["aspirin"]:
            assert texts["vaccine"] not in g.docs[1:] and texts["aspirin"] not in g.docs[1:]
            assert g.docs[0] in (texts["aspirin"], texts["vaccine"])
    aspirin_negatives = {d for g in groups if g.query == QUESTIONS["aspirin"] for d in g.docs[1:]}
    assert texts["coffee"] in aspirin_negatives or len(aspirin_negatives) >= 5


def test_group_loss_targets_the_positive_or_the_teacher():
    import torch

    class Scores(torch.nn.Module):  # a stand-in model: scores are read from the pair text
        device = torch.device("cpu")

        def preprocess(self, pairs, prompt=None, task=None):
            return {"x": torch.tensor([float(d) for _, d in pairs])}

        def forward(self, tokens):
            return {"scores": tokens["x"]}

    inputs = (["q", "q"], [["5", "0", "0"], ["0", "1", "3"]])
    ce = GroupLoss(Scores())(inputs, [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    assert float(ce) > 1.0  # the second group ranks its positive last
    same = GroupLoss(Scores(), distill=True)(inputs, [[5.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    other = GroupLoss(Scores(), distill=True, temperature=2.0)(inputs, [[0.0, 0.0, 5.0], [3.0, 1.0, 0.0]])
    assert float(other) > 0.5


def test_tiny_end_to_end_run_loads_everywhere_and_round_trips_as_artifact(tmp_path, isolated_cache):
    import torch
    from sentence_transformers import CrossEncoder

    from reranker.corpus import load_dataset
    from reranker.models import PROJECT_MODEL_INFO, PROJECT_MODELS
    from reranker.pipeline import Pipeline, PipelineConfig
    from reranker.project_models import build_from_artifact, export_artifact, recommended_blend

    data = write_medical(tmp_path / "data")
    out = tmp_path / "model"
    meta = finetune(tiny_config(data, out))

    assert not meta["interrupted"] and meta["steps"] >= 2
    assert meta["dev_before"]["queries"] >= 1 and "fused" in meta["dev_before"]
    assert {"fused", "reranked@interp0", "reranked@interp0.5"} <= set(meta["dev_after"])
    card = (out / "README.md").read_text()
    for needle in ("sentence-transformers/all-MiniLM-L6-v2", str(data.resolve()), "max length 48", "Dev metrics", meta["date"]):
        assert needle in card
    assert not (out / "checkpoints").exists(), "checkpoints are removed after a complete run"
    dev = (out / "dev_queries.txt").read_text().split()
    assert dev and set(dev) <= {f"q-{d}" for d in TOPICS}
    assert recommended_blend(out) in (0.0, 0.1, 0.2, 0.3, 0.5)
    # The finished model is registered for pickers, labelled with its dev metrics.
    assert str(out.resolve()) in PROJECT_MODELS and "dev nDCG@10" in PROJECT_MODEL_INFO[str(out.resolve())]

    trained = CrossEncoder(str(out))
    pairs = [(QUESTIONS["malaria"], TOPICS["malaria"][1]), (QUESTIONS["malaria"], TOPICS["coffee"][1])]
    expected = trained.predict(pairs, activation_fn=torch.nn.Identity())

    dataset = load_dataset(data)
    result = Pipeline(dataset.corpus, PipelineConfig(cross_encoder=str(out), rerank_depth=4)).search(QUESTIONS["malaria"])
    assert "reranked" in result.stages and len(result.stages["reranked"].hits) == 4

    report = export_artifact(out, tmp_path / "artifact")
    assert report["bytes"] < 25 * 1024 * 1024 and report["max_abs_error"] < 1e-3
    stored = {p.name for p in (tmp_path / "artifact").iterdir()}
    assert "weights.safetensors" in stored and "model.safetensors" not in stored and "tokenizer.json" not in stored
    assert {"heldout_queries.txt", "dev_queries.txt"} <= stored  # `eval --queries-file` works on the artifact too
    rebuilt_dir = build_from_artifact(tmp_path / "artifact", isolated_cache / "models")
    assert build_from_artifact(tmp_path / "artifact", isolated_cache / "models") == rebuilt_dir  # built once
    rebuilt = CrossEncoder(str(rebuilt_dir))
    assert rebuilt.max_length == trained.max_length == 48
    assert rebuilt.predict(pairs, activation_fn=torch.nn.Identity()) == pytest.approx(expected, abs=1e-3)


def test_missing_split_names_the_available_ones(tmp_path, isolated_cache):
    data = write_medical(tmp_path / "data", split="test")
    with pytest.raises(DataError, match=r"no relevance judgments for split .train. \(available: test\)"):
        finetune(tiny_config(data, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_dataset_without_qrels_is_refused(tmp_path, isolated_cache):
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "a", "text": "some text"}) + "\n")
    with pytest.raises(DataError, match="no relevance judgments"):
        finetune(tiny_config(docs, tmp_path / "out"))


def test_qrels_naming_only_unknown_documents_are_refused(tmp_path, isolated_cache):
    data = write_medical(tmp_path / "data", qrels={"q-aspirin": "no-such-doc", "q-insulin": "missing-too"})
    with pytest.raises(DataError, match=r"no usable judgments.*2 for unknown documents.*point at missing documents"):
        finetune(tiny_config(data, tmp_path / "out"))


def test_existing_output_needs_overwrite(tmp_path, isolated_cache):
    data = write_medical(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        finetune(tiny_config(data, out))
    assert (out / "keep.txt").read_text() == "mine"


def test_too_few_pairs_says_how_many_and_the_minimum(tmp_path, isolated_cache):
    data = write_medical(tmp_path / "data", qrels={"q-aspirin": "aspirin", "q-insulin": "insulin", "q-sleep": "sleep"})
    with pytest.raises(DataError, match=r"found \d labelled .* needs at least 4"):
        finetune(tiny_config(data, tmp_path / "out", dev_fraction=0.0))


def test_cli_reports_bad_input_with_exit_code_2(tmp_path, isolated_cache, capsys):
    from reranker.cli import main

    data = write_medical(tmp_path / "data", split="test")
    code = main(["finetune", "--dataset", str(data), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "no relevance judgments for split 'train'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (KeyboardInterrupt(), "interrupted before the first checkpoint"),
        (OSError(errno.ENOSPC, "No space left"), "disk filled up"),
    ],
)
def test_interrupt_and_full_disk_end_with_a_clear_error(tmp_path, isolated_cache, monkeypatch, failure, message):
    from sentence_transformers.cross_encoder import CrossEncoderTrainer

    def fail(self, *args, **kwargs):
        raise failure

    monkeypatch.setattr(CrossEncoderTrainer, "train", fail)
    data = write_medical(tmp_path / "data")
    with pytest.raises(RerankLensError, match=message):
        finetune(tiny_config(data, tmp_path / "out"))


def test_interrupt_after_a_checkpoint_keeps_it_and_saves_its_weights(tmp_path, isolated_cache, monkeypatch):
    from sentence_transformers.cross_encoder import CrossEncoderTrainer

    original = CrossEncoderTrainer.train

    def train_then_stop(self, *args, **kwargs):
        self.args.max_steps = 2  # two steps, a checkpoint at step 2, then Ctrl-C
        original(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(CrossEncoderTrainer, "train", train_then_stop)
    data = write_medical(tmp_path / "data")
    out = tmp_path / "out"
    meta = finetune(tiny_config(data, out, epochs=2.0))
    assert meta["interrupted"]
    assert (out / "checkpoints" / "checkpoint-2" / "model.safetensors").is_file()
    assert (out / "model.safetensors").is_file() and "interrupted" in (out / "README.md").read_text()


def test_groups_file_trains_without_mining_and_distils_into_fewer_layers(tmp_path, isolated_cache, monkeypatch):
    """The GPU path: groups mined once (out/groups.json.gz) train elsewhere; a teacher's scores as targets."""
    data = write_medical(tmp_path / "data")
    first = tmp_path / "first"
    finetune(tiny_config(data, first))
    groups, meta = load_groups(first / "groups.json.gz")
    assert groups and meta["datasets"][0]["name"] == "data" and all(len(g.docs) == 3 for g in groups)

    import reranker.mining

    def no_mining(*args, **kwargs):
        raise AssertionError("a groups file must not be mined again")

    monkeypatch.setattr(reranker.mining, "first_stage_lists", no_mining)
    student = tmp_path / "student"
    meta = finetune(
        tiny_config(
            data,
            student,
            datasets=(),
            groups=str(first / "groups.json.gz"),
            teacher=str(first),
            student_layers=2,
            negatives=5,  # this command's own mining options do not describe the groups file's groups
            candidates=30,
        )
    )
    assert (meta["config"]["negatives"], meta["config"]["candidates"], meta["config"]["datasets"]) == (2, 4, [str(data)])
    config = json.loads((student / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and meta["groups"] == len(groups)
    card = (student / "README.md").read_text()
    assert f"teacher `{first}`" in card and "first 2 layers" in card
    assert (student / "dev_queries.txt").read_text() == (first / "dev_queries.txt").read_text()
    assert meta["dev_after"] == {} and meta["recommended_interpolation"] == 0.0  # no dev figures from --groups

    # Its dev figures come afterwards from `eval --json` on each dataset's dev queries; the blend follows them.
    from reranker.finetune import record_dev

    def report(queries, **ndcg):
        return {"queries": queries, "configurations": {k.replace("_", "."): {"metrics": {"ndcg@10": v}} for k, v in ndcg.items()}}

    reports = [report(30, fused=0.6, interp0=0.5, interp0_3=0.7, other=0.99), report(10, fused=0.8, interp0=0.9, interp0_3=0.7)]
    dev = record_dev(student, reports)
    assert dev["dev_after"] == {"fused": 0.65, "reranked@interp0": 0.6, "reranked@interp0.3": 0.7, "queries": 40}
    assert dev["recommended_interpolation"] == 0.3  # the query-weighted best, never the unrelated configuration
    assert "Recommended interpolation weight: 0.3." in (student / "README.md").read_text()
    with pytest.raises(ConfigError, match="interpW"):
        record_dev(student, [report(5, fused=0.5)])

    # The student ships like any artifact: deltas on the backbone's first two layers only.
    import torch
    from sentence_transformers import CrossEncoder

    from reranker.project_models import artifact_info, build_from_artifact, export_artifact

    export_artifact(student, tmp_path / "artifact")
    rebuilt = CrossEncoder(str(build_from_artifact(tmp_path / "artifact", isolated_cache / "models")))
    pairs = [(QUESTIONS["malaria"], TOPICS["malaria"][1]), (QUESTIONS["coffee"], TOPICS["malaria"][1])]
    expected = CrossEncoder(str(student)).predict(pairs, activation_fn=torch.nn.Identity())
    assert rebuilt.predict(pairs, activation_fn=torch.nn.Identity()) == pytest.approx(expected, abs=1e-3)
    assert len(rebuilt[0].model.bert.encoder.layer) == 2
    assert artifact_info(tmp_path / "artifact", "fast sibling").startswith("fast sibling; 2 layers; trained on data")


def test_mine_command_writes_the_groups_file_finetune_reads(tmp_path, isolated_cache, capsys):
    from reranker.cli import main

    data = write_medical(tmp_path / "data")
    out = tmp_path / "mix.groups.json.gz"
    args = ["mine", "--dataset", f"{data},repeat=2", "--out", str(out), "--negatives", "2", "--candidates", "4"]
    assert main([*args, "--holdout-fraction", "0.25", "--dev-fraction", "0", "--min-pairs", "4", "--seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    groups, meta = load_groups(out)
    assert report["groups"] == len(groups) > 0 and all(len(g.docs) == 3 for g in groups)
    [dataset] = meta["datasets"]
    assert dataset["repeat"] == 2 and dataset["heldout_ids"] and meta["config"]["negatives"] == 2
    held_out = {QUESTIONS[qid.removeprefix("q-")] for qid in dataset["heldout_ids"]}
    assert not held_out & {g.query for g in groups}  # held-out queries never become training groups
    assert main([*args]) == 2 and "already exists" in capsys.readouterr().err
