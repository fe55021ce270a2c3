"""Speed mechanics: precision selection and fallback, the latency-budget planner, reduced-precision
rankings, and the benchmark scripts end to end on a tiny corpus. No timing is ever asserted."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from reranker import speed
from reranker.budget import plan_cascade, plan_depth
from reranker.cross_encoder import CrossEncoderReranker, ScoreCache
from reranker.errors import ConfigError
from reranker.speed import PairCostMeter, select_device, select_precision
from tests.conftest import BUNDLED_MODEL, PLAIN_AVX2_FLAGS, SEED_QUERY

SPR_NO_AMX = frozenset({"avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni"})


# --- precision selection -------------------------------------------------------------------------


def test_auto_picks_reduced_precision_only_with_amx_tiles():
    assert select_precision("auto", frozenset({"amx_bf16", "amx_tile", "avx512_fp16"})).precision == "bf16"
    assert select_precision("auto", frozenset({"amx_fp16", "amx_tile"})).precision == "fp16"
    assert select_precision("auto", SPR_NO_AMX).precision == "fp32"
    assert select_precision("auto", frozenset({"avx2", "avx512f"})).precision == "fp32"
    assert select_precision("auto", frozenset()).precision == "fp32"


def test_reduced_precision_requests_fall_back_to_fp32_without_native_support():
    choice = select_precision("bf16", frozenset({"avx2"}))
    assert choice.precision == "fp32" and "no native bf16" in choice.reason
    assert select_precision("fp16", frozenset({"avx512_bf16"})).precision == "fp32"
    assert select_precision("bf16", frozenset({"avx512_bf16"})).precision == "bf16"
    assert select_precision("fp32", SPR_NO_AMX | {"amx_bf16"}).precision == "fp32"


def test_device_auto_takes_a_visible_gpu_and_a_missing_gpu_falls_back_to_the_cpu():
    assert select_device("auto", cuda_devices=0).device == "cpu"
    assert select_device("auto", cuda_devices=1).device == "cuda"
    assert select_device("cuda:1", cuda_devices=2).device == "cuda:1"
    assert select_device("cpu", cuda_devices=1).device == "cpu"
    missing = select_device("cuda:1", cuda_devices=1)
    assert missing.device == "cpu" and "torch sees 1 CUDA GPU" in missing.reason
    assert select_device("auto").device == "cpu"  # this machine: a CPU-only torch
    for bad in ("gpu", "cuda:x", "", "mps"):
        with pytest.raises(ConfigError, match="device must be"):
            select_device(bad)


def test_gpu_precision_is_fp32_by_default_and_honours_requests():
    assert select_precision("auto", SPR_NO_AMX | {"amx_bf16"}, device="cuda").precision == "fp32"
    assert select_precision("fp16", frozenset(), device="cuda").precision == "fp16"
    assert select_precision("bf16", frozenset(), device="cuda:0").precision == "bf16"
    assert select_precision("fp32", frozenset(), device="cuda").precision == "fp32"


def test_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="auto, fp32, bf16, fp16"):
        select_precision("int4")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path, monkeypatch):
    monkeypatch.delenv(speed.CPU_FLAGS_ENV)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16 avx2\n\nprocessor\t: 1\n")
    monkeypatch.setattr(speed, "CPUINFO", cpuinfo)
    speed.cpu_flags.cache_clear()
    try:
        assert speed.cpu_flags() == frozenset({"fpu", "sse", "avx512_bf16", "avx2"})
        monkeypatch.setattr(speed, "CPUINFO", tmp_path / "missing")
        speed.cpu_flags.cache_clear()
        assert speed.cpu_flags() == frozenset()
    finally:
        speed.cpu_flags.cache_clear()


def test_the_suite_sees_one_plain_avx2_cpu_whatever_the_machine():
    """conftest pins the simulated flags, so `auto` is fp32 on AMX, AVX512-BF16 and AVX2 CI machines alike."""
    assert speed.cpu_flags() == frozenset(PLAIN_AVX2_FLAGS.split())
    assert select_precision("auto").precision == "fp32"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("avx2 avx512f avx512_bf16 amx_tile amx_bf16 amx_int8", "bf16"),  # Sapphire Rapids with AMX
        ("avx2,avx512f,avx512_bf16,avx512_fp16,avx512_vnni", "fp32"),  # AVX512-BF16 without AMX
        ("avx2 fma", "fp32"),  # plain AVX2 (e.g. an AMD EPYC without AVX-512)
    ],
)
def test_each_cpu_class_is_simulated_through_the_environment(monkeypatch, flags, expected):
    monkeypatch.setenv(speed.CPU_FLAGS_ENV, flags)
    speed.cpu_flags.cache_clear()
    try:
        reranker = CrossEncoderReranker(BUNDLED_MODEL, max_length=128, cache=ScoreCache())
        assert reranker.precision == expected
    finally:
        speed.cpu_flags.cache_clear()  # the next call reads the restored environment


def test_reranker_falls_back_to_fp32_when_the_cpu_lacks_bf16(monkeypatch):
    monkeypatch.setattr(speed, "cpu_flags", lambda: frozenset({"avx2"}))
    reranker = CrossEncoderReranker(BUNDLED_MODEL, max_length=128, precision="bf16", cache=ScoreCache())
    assert reranker.precision == "fp32"
    assert "no native bf16" in reranker.precision_choice.reason


def test_reduced_precision_ranks_the_seed_set_like_fp32(monkeypatch, seed_corpus):
    monkeypatch.setattr(speed, "cpu_flags", lambda: SPR_NO_AMX)  # force the bf16/fp16 code paths
    docs = list(seed_corpus.documents)
    raw = {}
    for precision in ("fp32", "bf16", "fp16"):
        reranker = CrossEncoderReranker(BUNDLED_MODEL, max_length=128, precision=precision, cache=ScoreCache())
        assert reranker.precision == precision
        scores = reranker.score_documents(SEED_QUERY, docs)[0]
        raw[precision] = [s.raw for s in scores]
    # The untrained head's scores sit close together, so compare every order that fp32 separates by
    # more than bf16's rounding (about 1e-3 here): reduced precision must keep all of those.
    for precision in ("bf16", "fp16"):
        for i in range(len(docs)):
            for j in range(len(docs)):
                if raw["fp32"][i] - raw["fp32"][j] > 2e-3:
                    assert raw[precision][i] > raw[precision][j], (precision, docs[i].id, docs[j].id)
    assert raw["fp16"] == pytest.approx(raw["fp32"], abs=1e-3)
    assert raw["bf16"] == pytest.approx(raw["fp32"], abs=1e-2)


def test_precisions_do_not_share_cached_scores(monkeypatch):
    monkeypatch.setattr(speed, "cpu_flags", lambda: SPR_NO_AMX)
    cache = ScoreCache()
    fp32 = CrossEncoderReranker(BUNDLED_MODEL, max_length=128, precision="fp32", cache=cache)
    fp16 = CrossEncoderReranker(BUNDLED_MODEL, max_length=128, precision="fp16", cache=cache)
    pairs = [(SEED_QUERY, "attention weighs value vectors")]
    fp32.score_pairs(pairs)
    assert fp16._score_pairs(pairs)[1] == 1  # scored afresh, not served fp32's score
    assert fp32._score_pairs(pairs)[1] == 0
    assert fp32.per_pair_ms is not None and fp32.per_pair_ms > 0


def test_threads_give_way_to_other_runnable_work(tmp_path):
    assert speed.intra_op_threads(cores=2, busy=0) == 2
    assert speed.intra_op_threads(cores=2, busy=1) == 1
    assert speed.intra_op_threads(cores=2, busy=9) == 1
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("7.10 6.90 5.00 4/313 5260\n")
    tasks = tmp_path / "task"
    for tid, state in [("1", "R"), ("2", "S"), ("3", "R")]:
        (tasks / tid).mkdir(parents=True)
        (tasks / tid / "stat").write_text(f"{tid} (python -m pytest) {state} 1 2 3\n")
    # 4 runnable machine-wide, 2 of them this process's own threads: 2 belong to other work.
    assert speed.runnable_elsewhere(loadavg, own_tasks=tasks) == 2
    assert speed.runnable_elsewhere(loadavg, own_tasks=tmp_path / "no-tasks") == 3
    assert speed.runnable_elsewhere(tmp_path / "missing") == 0


def test_cost_meter_smooths_and_ignores_empty_records():
    meter = PairCostMeter(smoothing=0.5)
    assert meter.per_pair_ms("m") is None
    meter.record("m", 10, 100.0)
    meter.record("m", 0, 50.0)
    assert meter.per_pair_ms("m") == pytest.approx(10.0)
    meter.record("m", 10, 200.0)
    assert meter.per_pair_ms("m") == pytest.approx(15.0)


# --- latency budget ------------------------------------------------------------------------------


def test_planner_picks_the_deepest_depth_that_fits_and_says_why():
    # 10 ms per pair, 100 ms budget, 20 ms spent: 80 ms buys 8 pairs; cumulative pairs 1,3,4,6,7,9,...
    plan = plan_depth(100, spent_ms=20, new_pairs=[1, 2, 1, 2, 1, 2, 1, 2], per_pair_ms=10, max_depth=8)
    assert plan.depth == 5 and plan.pairs == 7 and plan.estimated_ms == pytest.approx(70)
    assert "depth 5 needs 7 new pairs" in plan.reason and "depth 6 would need 9" in plan.reason
    assert "80 ms left" in plan.reason and "10.0 ms per pair" in plan.reason


def test_planner_counts_cached_pairs_as_free_and_respects_the_configured_depth():
    plan = plan_depth(100, spent_ms=0, new_pairs=[0, 0, 0, 5, 0, 0], per_pair_ms=10, max_depth=6)
    assert plan.depth == 6 and plan.pairs == 5 and "all 6 candidates fit" in plan.reason
    capped = plan_depth(1000, spent_ms=0, new_pairs=[1] * 10, per_pair_ms=10, max_depth=4)
    assert capped.depth == 4 and "configured depth 4 fits" in capped.reason


def test_planner_keeps_depth_one_when_nothing_fits():
    plan = plan_depth(50, spent_ms=45, new_pairs=[2, 2], per_pair_ms=10, max_depth=2)
    assert plan.depth == 1 and "exceeds it" in plan.reason


def test_planner_refuses_a_non_positive_budget():
    with pytest.raises(ConfigError, match="positive number of milliseconds"):
        plan_depth(0, spent_ms=0, new_pairs=[1], per_pair_ms=1, max_depth=1)


def test_cascade_gives_the_fine_model_its_depth_then_widens_the_coarse_pool():
    # 1000 ms: coarse 2 ms/doc, fine 20 ms/doc. Fine 30 costs 600 + coarse >= 30; the rest buys coarse depth.
    plan = plan_cascade(1000, spent_ms=0, coarse_ms_per_doc=2, fine_ms_per_doc=20, max_coarse=500, max_fine=30)
    assert plan.fine_depth == 30
    assert plan.coarse_depth == 200  # (1000 - 600) / 2
    assert plan.estimated_ms == pytest.approx(1000)
    tight = plan_cascade(100, spent_ms=0, coarse_ms_per_doc=2, fine_ms_per_doc=20, max_coarse=500, max_fine=30)
    assert tight.fine_depth == 4 and tight.coarse_depth >= tight.fine_depth
    assert "fine depth 4" in tight.reason


def test_pipeline_budget_chooses_depth_and_explains(seed_pipeline):
    roomy = seed_pipeline.search(SEED_QUERY, latency_budget_ms=1e9)
    assert len(roomy.stages["reranked"].hits) == 5
    assert any(m.startswith("Latency budget:") and "depth 5" in m for m in roomy.messages)
    tight = seed_pipeline.search("how do recurrent networks carry state", latency_budget_ms=0.001)
    assert len(tight.stages["reranked"].hits) >= 1
    assert any(m.startswith("Latency budget:") for m in tight.messages)


def test_a_model_loaded_while_planning_the_budget_is_reported_as_a_load_not_subtracted(seed_pipeline):
    # max_length 72 is used nowhere else, so this query loads a fresh model inside the budget planner.
    result = seed_pipeline.search(SEED_QUERY, max_length=72, latency_budget_ms=1e9)
    timing = next(t for t in result.timings if t.stage == "reranked")
    assert timing.load_ms > 0 and timing.ms >= 0


def test_pipeline_refuses_a_bad_budget_or_precision(seed_pipeline):
    with pytest.raises(ConfigError):
        seed_pipeline.search(SEED_QUERY, latency_budget_ms=-5)
    with pytest.raises(ConfigError):
        seed_pipeline.search(SEED_QUERY, precision="int8")
    with pytest.raises(ConfigError, match="device must be"):
        seed_pipeline.search(SEED_QUERY, device="tpu")


# --- benchmarks end to end -----------------------------------------------------------------------


@pytest.fixture()
def tiny_beir(tmp_path, monkeypatch, seed_corpus):
    monkeypatch.setenv("RERANK_LENS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for doc in seed_corpus.documents:
            f.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}) + "\n")
    queries = {"q1": SEED_QUERY, "q2": "recurrent networks hidden state", "q3": "cost of self-attention"}
    with open(folder / "queries.jsonl", "w") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\tattention-def\t1\nq2\trnn\t1\nq3\tattention-cost\t1\n"
    )
    return str(folder)


def _run_json(main, argv) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue())


def test_cross_encoder_benchmark_reports_the_required_keys(tiny_beir):
    from benchmarks.cross_encoder import main

    result = _run_json(main, ["--dataset", tiny_beir, "--queries", "2", "--depth", "4", "--model", BUNDLED_MODEL, "--json"])
    for key in ("baseline_pairs_per_s", "project_pairs_per_s", "speedup", "top10_agreement"):
        assert result[key] > 0
    assert result["pairs"] >= 8 and result["queries"] == 2
    assert 0.0 <= result["top10_agreement"] <= 1.0
    assert result["baseline_ndcg@10"] is not None


def test_cross_encoder_benchmark_replays_saved_candidates(tiny_beir, tmp_path):
    from benchmarks.cross_encoder import main

    saved = tmp_path / "candidates.json"
    common = ["--depth", "3", "--model", BUNDLED_MODEL, "--json"]
    first = _run_json(main, ["--dataset", tiny_beir, "--queries", "3", "--save-candidates", str(saved), *common])
    replay = _run_json(main, ["--candidates", str(saved), *common])
    assert len(json.loads(saved.read_text())["documents"]) <= 9
    assert (replay["pairs"], replay["queries"]) == (first["pairs"], first["queries"])
    assert replay["project_ndcg@10"] == first["project_ndcg@10"]
    assert replay["first_stage_ndcg@10"] == first["first_stage_ndcg@10"]
    assert replay["device"] == "cpu" and "saved candidates" in replay["dataset"]


def test_encoding_benchmark_compares_weight_precisions_on_retrieval_quality(tiny_beir):
    from benchmarks.encoding import main

    result = _run_json(main, ["--dataset", tiny_beir, "--variants", "fp32", "int8", "--json"])
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == {"fp32", "int8"} and result["queries"] == 3
    assert rows["fp32"]["min_cosine_to_fp32"] == pytest.approx(1.0, abs=1e-5)
    assert rows["int8"]["min_cosine_to_fp32"] < 0.9999  # the quantised copy really ran
    assert rows["fp32"]["ndcg@10"] > 0.5 and all(r["docs_per_s"] > 0 for r in rows.values())


def test_latency_benchmark_reports_percentiles_per_depth(tiny_beir):
    from benchmarks.latency import main

    argv = ["--dataset", tiny_beir, "--depths", "2", "3", "--queries", "1", "--model", BUNDLED_MODEL, "--json"]
    result = _run_json(main, argv)
    assert set(result["depths"]) == {"2", "3"}
    for report in result["depths"].values():
        assert report["ms"]["total"]["p50"] > 0 and report["ms"]["reranked"]["p95"] >= 0


def test_bm25_benchmark_finds_both_backends_rank_alike(tiny_beir):
    from benchmarks.bm25 import main

    result = _run_json(main, ["--dataset", tiny_beir, "--queries", "3", "--json"])
    assert set(result["backends"]) == {"bm25s", "rank_bm25"}
    assert result["backends"]["rank_bm25"]["same_top10_order"] == 1.0


@pytest.mark.slow
def test_startup_benchmark_times_cli_and_app_starts_in_fresh_processes(tiny_beir, tmp_path):
    from benchmarks.startup import APP_PHASES, PHASES, main

    argv = ["--dataset", tiny_beir, "--model", BUNDLED_MODEL, "--cache-root", str(tmp_path / "c"), "--app", "--json"]
    result = _run_json(main, argv)
    first, second = result["starts"]["first"], result["starts"]["second"]
    assert "encoded" in first["details"]["dense index"]
    assert "loaded from cache" in second["details"]["dense index"]
    assert set(second["phases"]) == set(PHASES) and second["peak_rss_mb"] > 0
    assert second["phases"]["python + imports"] > 0
    app = result["app"]
    assert list(app) == list(APP_PHASES)
    assert 0 < app["page served"] <= app["first query answered"]
    assert app["corpus indexed + model loaded"] <= app["first query answered"]
