"""Engines: the cross-encoder's pairs of a query set scored in this process (local) or on Ray actors, with
identical fp32 runs; the deferred rounds behind the ray engine run here without Ray (its actor class on
pyarrow rows in this process), and one test starts a local 2-worker Ray cluster when ray is installed."""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from reranker.cli import main
from reranker.corpus import load_dataset
from reranker.cross_encoder import CrossEncoderReranker
from reranker.engines import EngineConfig, open_engine
from reranker.engines.jobs import PairJob, run_in_rounds
from reranker.engines.local import LocalEngine
from reranker.engines.ray import PairScorer, _row
from reranker.errors import ConfigError
from reranker.pipeline import PipelineConfig, RerankStages
from reranker.types import PipelineResult
from tests.conftest import BUNDLED_MODEL, SEED_DOCUMENTS, SEED_QUERY
from tests.support import free_port, ranked, write_beir

REPO = Path(__file__).resolve().parents[1]
KNOWLEDGE = REPO / "corpora" / "knowledge"
PROJECT_MODEL = "rerank-lens/minilm-l6-general"
SEED_IDS = [doc.id for doc in SEED_DOCUMENTS]
QUERIES = {"q1": SEED_QUERY, "q2": "recurrent networks with a hidden state", "q3": "cost of self-attention on long inputs"}
QRELS = {"q1": {"attention-def": 2, "attention-cost": 1}, "q2": {"rnn": 2}, "q3": {"attention-cost": 2}}
RAY_MISSING = "ray[data] is not installed (pip install 'rerank-lens[ray]'), so the Ray engine is not exercised"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RERANK_LENS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def beir(tmp_path_factory):
    return write_beir(tmp_path_factory.mktemp("beir"), SEED_DOCUMENTS, QUERIES, QRELS)


def in_process(jobs: list[PairJob], calls: list[list[int]] | None = None) -> list:
    """Score jobs as the Ray engine does, without Ray: each job one pyarrow row through the actor class.
    `calls` gets each call's job sizes."""
    import pyarrow as pa

    if calls is not None:
        calls.append([len(job) for job in jobs])
    scorers: dict = {}
    out = []
    for index, job in enumerate(jobs):
        scorer = scorers.setdefault(job.spec, PairScorer(job.spec, "cpu", 2))
        table = scorer(pa.Table.from_pylist([_row(index, job)]))
        assert table.column("job").to_pylist() == [index]
        out.append(table.column("scores").to_pylist()[0])
    return out


def scored(results: dict[str, PipelineResult]) -> dict[str, list]:
    """Every reranked document's id, score and window scores, per query: what must not move."""
    return {
        qid: [(h.doc_id, h.score, [c.raw for c in h.chunks]) for stage in ("coarse", "reranked") if stage in r.stages
              for h in r.stages[stage].hits]
        for qid, r in results.items()
    }


def _calls(stages: RerankStages, queries: dict[str, tuple[str, list[str]]]):
    return [(qid, functools.partial(stages.rerank, text, ranked("run", ids))) for qid, (text, ids) in queries.items()]


def test_deferred_rounds_score_what_the_local_engine_scores_and_write_its_results(seed_corpus):
    """A repeated query text scores only its new documents (the others' pairs are in an earlier job), as the
    local loop finds them in the cache; every score, to the last bit, is the local one."""
    queries = {
        "a": (SEED_QUERY, SEED_IDS),
        "b": ("recurrent networks with a hidden state", SEED_IDS[::-1]),
        "a-again": (SEED_QUERY, SEED_IDS[2:]),
    }
    config = PipelineConfig(cross_encoder=BUNDLED_MODEL, rerank_depth=4, precision="fp32", chunk_tokens=24, chunk_overlap=8)
    stages = RerankStages(seed_corpus, config)
    local = dict(LocalEngine().run(_calls(stages, queries)))
    local_pairs = len(stages.score_cache)  # every pair the local loop scored, once each
    stages.score_cache.clear()
    rounds: list[list[int]] = []
    deferred = dict(run_in_rounds(_calls(stages, queries), functools.partial(in_process, calls=rounds)))
    assert list(deferred) == list(queries)
    assert scored(deferred) == scored(local)
    (jobs,) = rounds  # one round, a job per query
    windows = len(deferred["a-again"].stages["reranked"].get("attention-general").chunks)
    assert jobs[2] == windows  # "a-again" adds attention-general alone: bert and rnn are in a's job
    assert sum(jobs) == len(stages.score_cache) == local_pairs  # no pair scored twice
    assert any(len(h.chunks) > 1 for r in deferred.values() for h in r.after.hits)  # windows, not whole documents


def test_a_cascade_takes_a_round_per_model_and_a_small_round_size_splits_the_queries(seed_corpus):
    queries = {qid: (text, SEED_IDS) for qid, text in QUERIES.items()}
    config = PipelineConfig(
        cross_encoder=PROJECT_MODEL, coarse_cross_encoder=BUNDLED_MODEL, coarse_depth=5, rerank_depth=3, precision="fp32"
    )
    stages = RerankStages(seed_corpus, config)
    local = dict(LocalEngine().run(_calls(stages, queries)))
    stages.score_cache.clear()
    rounds: list[list[int]] = []
    deferred = list(run_in_rounds(_calls(stages, queries), functools.partial(in_process, calls=rounds), round_pairs=6))
    assert [qid for qid, _ in deferred] == list(queries)
    assert scored(dict(deferred)) == scored(local)
    # 5 coarse pairs a query pass 6 at the second: queries 1-2 (coarse, then the fine top 3), then query 3
    assert rounds == [[5, 5], [3, 3], [5], [3]]


def test_rerank_run_and_eval_through_deferred_jobs_write_the_local_engines_files(beir, tmp_path, capsys, monkeypatch):
    """Both commands through the engine interface: the deferred path writes the local files byte for byte (each
    command builds its own pipeline, so each starts from an empty score cache and scores every pair itself)."""
    import reranker.engines.local as local_engine

    run = _knowledge_run(tmp_path / "in.trec", queries=2, depth=4)
    rerank = ["rerank-run", "--dataset", str(KNOWLEDGE), "--run", str(run), "--cross-encoder", PROJECT_MODEL]
    rerank += ["--precision", "fp32"]
    evaluate = ["eval", "--dataset", str(beir), "--compare", f"fused,mini=rerank:{BUNDLED_MODEL}@rerank_depth=4",
                "--precision", "fp32"]
    for engine in ("local", "deferred"):
        if engine == "deferred":
            monkeypatch.setattr(local_engine.LocalEngine, "run", lambda self, calls: run_in_rounds(calls, in_process))
        assert main([*rerank, "--out", str(tmp_path / f"{engine}.trec")]) == 0
        assert main([*evaluate, "--trec-runs", str(tmp_path / f"{engine}-eval")]) == 0
    capsys.readouterr()
    assert (tmp_path / "deferred.trec").read_bytes() == (tmp_path / "local.trec").read_bytes()
    assert (tmp_path / "deferred-eval" / "mini.trec").read_bytes() == (tmp_path / "local-eval" / "mini.trec").read_bytes()


class FakeRay:
    """Just enough of ray for RayEngine: a running cluster with `resources`, and Ray Data that runs the actor
    class in this process on pyarrow rows, recording how map_batches was called."""

    def __init__(self, resources: dict[str, float]) -> None:
        import pyarrow as pa

        self.resources = resources
        self.calls: list[dict] = []
        fake = self

        class Dataset:
            def __init__(self, rows):
                self.rows = rows

            def map_batches(self, fn, **kwargs):
                fake.calls.append(kwargs)
                self.actor = fn(**kwargs["fn_constructor_kwargs"])
                return self

            def iter_batches(self, **kwargs):
                for row in self.rows:
                    yield self.actor(pa.Table.from_pylist([row]))

        class Context:
            @staticmethod
            def get_current():
                return Context

        self.data = type("data", (), {
            "from_items": staticmethod(lambda rows, **kwargs: Dataset(rows)),
            "ActorPoolStrategy": staticmethod(lambda size: ("actor pool", size)),
            "DataContext": Context,
        })

    def is_initialized(self) -> bool:
        return True

    def cluster_resources(self) -> dict[str, float]:
        return self.resources


def test_the_ray_engine_puts_an_actor_on_each_gpu_or_cpu_and_returns_the_local_scores(seed_corpus, monkeypatch):
    """Without a GPU here a "cuda" actor falls back to the CPU, so the GPU plan is checked, not GPU arithmetic."""
    import reranker.engines.ray as ray_engine

    stages = RerankStages(seed_corpus, PipelineConfig(cross_encoder=BUNDLED_MODEL, precision="fp32"))
    calls = {qid: (text, SEED_IDS) for qid, text in QUERIES.items()}
    jobs: list = []  # every pair: the new stages' score cache is empty
    local: list = []

    def score(round_jobs):
        jobs.extend(round_jobs)
        local.extend(in_process(round_jobs))
        return local[-len(round_jobs):]

    list(run_in_rounds(_calls(stages, calls), score))
    for resources, workers, plan in (
        ({"CPU": 16.0, "GPU": 2.0}, None, {"compute": ("actor pool", 2), "num_gpus": 1, "num_cpus": 1, "device": "cuda"}),
        ({"CPU": 3.0}, None, {"compute": ("actor pool", 3), "num_gpus": 0, "num_cpus": 1, "device": "cpu"}),
    ):
        fake = FakeRay(resources)
        monkeypatch.setattr(ray_engine, "import_ray", lambda fake=fake: fake)
        with ray_engine.RayEngine(workers=workers) as engine:
            assert [s.tolist() for s in engine.score_jobs(jobs)] == local  # the same floats
        (call,) = fake.calls
        assert call["batch_size"] == 1 and call["fn_constructor_kwargs"]["spec"] == jobs[0].spec
        device = call["fn_constructor_kwargs"]["device"]
        assert {**{k: call[k] for k in ("compute", "num_gpus", "num_cpus")}, "device": device} == plan
    monkeypatch.setattr(ray_engine, "import_ray", lambda: FakeRay({"CPU": 8.0, "GPU": 1.0}))
    with pytest.raises(ConfigError, match="has 1 GPU"):
        ray_engine.RayEngine(workers=2).score_jobs(jobs)
    monkeypatch.setattr(ray_engine, "import_ray", lambda: FakeRay({"CPU": 2.0}))
    with pytest.raises(ConfigError, match="needs 4 CPUs"):
        ray_engine.RayEngine(workers=2, worker_cpus=2).score_jobs(jobs)


# ---------------------------------------------------------------- refusals, before any model loads


def _refused(capsys, *argv) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.count("error:") == 1, err
    return err


def test_ray_options_without_the_ray_engine_and_a_budget_on_ray_are_refused(beir, tmp_path, capsys):
    run = tmp_path / "in.trec"
    run.write_text("q1 Q0 rnn 1 2.0 bm25\nq1 Q0 bert 2 1.0 bm25\n")
    out = tmp_path / "out.trec"
    base = ["rerank-run", "--dataset", str(beir), "--run", str(run), "--out", str(out), "--cross-encoder", BUNDLED_MODEL]
    assert "add --engine ray" in _refused(capsys, *base, "--address", "127.0.0.1:6379")
    assert "--workers must be at least 1" in _refused(capsys, *base, "--engine", "ray", "--workers", "0")
    ray_with_budget = ("eval", "--dataset", str(beir), "--engine", "ray", "--latency-budget-ms", "500")
    assert "--latency-budget-ms" in _refused(capsys, *ray_with_budget)
    assert not out.exists()


def test_the_ray_engine_without_ray_names_the_extra(beir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed
    run = tmp_path / "in.trec"
    run.write_text("q1 Q0 rnn 1 2.0 bm25\n")
    err = _refused(
        capsys, "rerank-run", "--dataset", str(beir), "--run", str(run), "--out", str(tmp_path / "o.trec"),
        "--cross-encoder", BUNDLED_MODEL, "--engine", "ray",
    )
    assert 'pip install "rerank-lens[ray]"' in err


def test_an_address_where_no_cluster_answers_is_refused_in_seconds(beir, tmp_path, capsys, monkeypatch):
    import reranker.engines.ray as ray_engine

    monkeypatch.setattr(ray_engine, "import_ray", lambda: object())  # with or without ray installed
    err = _refused(capsys, "eval", "--dataset", str(beir), "--engine", "ray", "--address", f"127.0.0.1:{free_port()}")
    assert "no Ray cluster answers there" in err and "ray start --head" in err
    assert "give host:port" in _refused(capsys, "eval", "--dataset", str(beir), "--engine", "ray", "--address", "nowhere")


def test_the_local_engine_is_the_default_and_never_imports_ray():
    assert open_engine().name == "local" == EngineConfig().engine
    code = (
        "import sys; from reranker.cli import build_parser; from reranker.engines import open_engine; open_engine(); "
        "import reranker.commands.rerank_run, reranker.commands.evaluate; "
        "assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules), 'ray was imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


# ---------------------------------------------------------------- a real Ray cluster


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason=RAY_MISSING)
    pytest.importorskip("ray.data", reason=RAY_MISSING)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_rerank_run_on_a_local_2_worker_ray_cluster_writes_the_local_run(ray_cluster, tmp_path, capsys, monkeypatch):
    """The pairs are scored on the actors (this process never runs the model) and the run is identical at fp32.
    (eval hands its queries to the same engine: the deferred test above checks it without a cluster.)"""
    run = _knowledge_run(tmp_path / "in.trec", queries=3, depth=4)
    rerank = ["rerank-run", "--dataset", str(KNOWLEDGE), "--run", str(run), "--cross-encoder", PROJECT_MODEL]
    rerank += ["--precision", "fp32", "--json"]
    assert main([*rerank, "--out", str(tmp_path / "local.trec")]) == 0
    assert json.loads(capsys.readouterr().out)["engine"] == "local"

    def not_here(*args, **kwargs):
        raise AssertionError("the driver ran the model: the pairs were not scored on the Ray actors")

    monkeypatch.setattr(CrossEncoderReranker, "model_scores", not_here)  # each command has its own score cache
    assert main([*rerank, "--out", str(tmp_path / "ray.trec"), "--engine", "ray", "--workers", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["engine"] == "ray"
    assert (tmp_path / "ray.trec").read_bytes() == (tmp_path / "local.trec").read_bytes()


def _knowledge_run(path: Path, *, queries: int, depth: int) -> Path:
    """A run over the first test queries of the knowledge corpus: each query's judged documents, then others."""
    dataset = load_dataset(KNOWLEDGE)
    qrels = dataset.qrels["test"]
    others = [doc.id for doc in dataset.corpus.documents]
    lines = []
    for qid in list(qrels)[:queries]:
        judged = sorted(qrels[qid], key=lambda d: -qrels[qid][d])
        ids = list(dict.fromkeys([*judged[: depth // 2], *others]))[:depth]
        lines += [f"{qid} Q0 {doc} {rank} {float(depth - rank + 1)} bm25" for rank, doc in enumerate(ids, start=1)]
    path.write_text("\n".join(lines) + "\n")
    return path
