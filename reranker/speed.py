"""Inference speed settings: numeric precision per CPU, thread count, measured cost per pair.

Models run on a CUDA GPU when torch sees one (`device="auto"`), else on the CPU. On the CPU,
precision is chosen from what it computes natively. Measured on an AVX-512 Xeon without AMX
(see benchmarks/README.md): fp16 (AVX512-FP16) saves about 10% of CPU time per pair on large
length-sorted batches and stays within 1e-4 of fp32 logits; bf16 (AVX512_BF16 only) is *slower*
than fp32, because its dot-product instruction has no more throughput than fp32 FMA there;
and oneDNN compiles a kernel for every new input shape, so reduced precision loses on the small,
variously shaped batches of interactive queries. With AMX tiles bf16 does pay: on a 16-core
Xeon with AMX it scored SciFact pairs 2.2x faster than plain fp32 predict, top-10 agreement 1.000.
So "auto" means bf16 with AMX tiles, fp16 with AMX-FP16, else fp32; "fp16" and "bf16" stay
available on request. fp32 on a CPU scores in passes of at most `CPU_PASS_TOKENS` tokens, which stay
in cache (1.16-1.18x the pairs/s of batches of 32 on a 2-core AVX2 EPYC).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from reranker.errors import ConfigError

logger = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
CPUINFO = Path("/proc/cpuinfo")
# Space- or comma-separated CPU flags that replace /proc/cpuinfo's: simulates another CPU class
# (tests pin a plain AVX2 machine with it, so `auto` means the same precision on every CI machine).
CPU_FLAGS_ENV = "RERANK_LENS_CPU_FLAGS"

# Tokens per forward pass in fp32 on a CPU. Small passes keep their activations in cache: measured on a 2-core
# AMD EPYC (AVX2; benchmarks/README.md), 445 SciFact pairs of ~256 tokens ran 1.08-1.18x faster in passes of
# 4-8 pairs than of 32 (and occlusion variants 1.15-1.2x faster), with the same scores.
CPU_PASS_TOKENS = 1280

# CPU flags that make each reduced precision native (Linux /proc/cpuinfo names).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
FP16_FLAGS = frozenset({"avx512_fp16", "amx_fp16"})


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision inference runs in, what was asked for, and why."""

    requested: str
    precision: Literal["fp32", "bf16", "fp16"]
    reason: str


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (empty where /proc/cpuinfo is unavailable), or the
    simulated ones in $RERANK_LENS_CPU_FLAGS."""
    simulated = os.environ.get(CPU_FLAGS_ENV)
    if simulated is not None:
        return frozenset(simulated.replace(",", " ").split())
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        logger.info("no %s; assuming no reduced-precision instructions", CPUINFO)
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (platform's guess elsewhere), for reports of timings."""
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


@dataclass(frozen=True)
class DeviceChoice:
    """The torch device models run on, what was asked for, and why."""

    requested: str
    device: str
    reason: str


def check_device(requested: str) -> None:
    if not _DEVICE.fullmatch(requested or ""):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, not {requested!r}", field="device")


def select_device(requested: str = "auto", cuda_devices: int | None = None) -> DeviceChoice:
    """auto: the first CUDA GPU when torch sees one, else the CPU; a missing GPU falls back to the CPU."""
    check_device(requested)
    if requested == "cpu":
        return DeviceChoice(requested, "cpu", "cpu requested")
    if cuda_devices is None:
        import torch

        cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(requested.split(":", 1)[1]) if ":" in requested else 0
    if index < cuda_devices:
        device = f"cuda:{index}" if ":" in requested else "cuda"
        return DeviceChoice(requested, device, f"{requested}: CUDA GPU {index} of {cuda_devices}")
    if requested == "auto":
        return DeviceChoice(requested, "cpu", "auto: no CUDA GPU visible to torch")
    return DeviceChoice(requested, "cpu", f"{requested} requested but torch sees {cuda_devices} CUDA GPU(s); using the CPU")


def select_precision(
    requested: str = "auto", flags: frozenset[str] | None = None, device: str = "cpu"
) -> PrecisionChoice:
    """Resolve a precision request against the device; unsupported requests fall back to fp32."""
    if requested not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if device.startswith("cuda"):
        return _gpu_precision(requested)
    flags = cpu_flags() if flags is None else flags
    if requested == "fp32":
        return PrecisionChoice(requested, "fp32", "fp32 requested")
    if requested == "bf16":
        if flags & BF16_FLAGS:
            return PrecisionChoice(requested, "bf16", f"bf16 requested; CPU has {', '.join(sorted(flags & BF16_FLAGS))}")
        return PrecisionChoice(
            requested, "fp32", "bf16 requested but the CPU has no native bf16 (avx512_bf16/amx_bf16); using fp32"
        )
    if requested == "fp16":
        if flags & FP16_FLAGS:
            return PrecisionChoice(requested, "fp16", f"fp16 requested; CPU has {', '.join(sorted(flags & FP16_FLAGS))}")
        return PrecisionChoice(
            requested, "fp32", "fp16 requested but the CPU has no native fp16 (avx512_fp16/amx_fp16); using fp32"
        )
    if "amx_bf16" in flags:
        return PrecisionChoice(requested, "bf16", "auto: CPU has AMX bf16 tiles")
    if "amx_fp16" in flags:
        return PrecisionChoice(requested, "fp16", "auto: CPU has AMX fp16 tiles")
    return PrecisionChoice(requested, "fp32", "auto: no AMX tiles, and without them fp16/bf16 are not faster than fp32 on CPU")


def _gpu_precision(requested: str) -> PrecisionChoice:
    # Measured on an H200 (benchmarks/README.md): a MiniLM-L6 forward pass ran ~5x faster in fp16, yet
    # end-to-end scoring was bound by tokenizing on the CPU and fp16 was no faster (slower at batch 32),
    # so auto keeps the exact fp32 rankings; fp16/bf16 stay available for larger models.
    if requested == "auto":
        return PrecisionChoice(requested, "fp32", "auto: CUDA GPU; scoring is tokenizer-bound there, so fp32")
    return PrecisionChoice(requested, requested, f"{requested} requested on a CUDA GPU")  # type: ignore[arg-type]


_copies: dict[tuple[str, str], object] = {}
_copies_lock = threading.Lock()


def weights_in(model, key: str, precision: str):
    """The model itself for fp32, else one per-process copy whose weights are stored in bf16/fp16.

    Measured here, stored half-precision weights beat autocast (which re-casts activations around
    every op and keeps layer norms in fp32) by about 1.3x; outputs stay within 1e-4 of fp32.
    """
    if precision == "fp32":
        return model
    import copy

    import torch

    with _copies_lock:
        if (key, precision) not in _copies:
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
            _copies[(key, precision)] = copy.deepcopy(model).to(dtype).eval()
        return _copies[(key, precision)]


def physical_cores() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def runnable_elsewhere(loadavg: Path = Path("/proc/loadavg"), own_tasks: Path = Path("/proc/self/task")) -> int:
    """Threads of other processes running or waiting for a CPU right now: the 4th /proc/loadavg field
    less this process's own runnable threads (its OpenMP workers must not count as competition)."""
    try:
        running = int(loadavg.read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - max(1, _own_runnable_threads(own_tasks)))


def _own_runnable_threads(tasks: Path) -> int:
    count = 0
    try:
        for stat in tasks.glob("*/stat"):
            with contextlib.suppress(OSError, IndexError):
                # The state follows the parenthesised command name, which may itself contain spaces.
                if stat.read_text().rsplit(")", 1)[1].split()[0] == "R":
                    count += 1
    except OSError:
        return 1
    return count


def intra_op_threads(cores: int | None = None, busy: int | None = None) -> int:
    """Torch threads for the next scoring call: every usable CPU when the machine is free, fewer
    when other work is runnable. On an oversubscribed machine OpenMP threads wait at every op's
    barrier for each other to be scheduled: measured here, one thread scored a single pair in
    0.4 s where two took 3.5 s, and large batches ran no slower on one thread than on two."""
    cores = physical_cores() if cores is None else cores
    busy = runnable_elsewhere() if busy is None else busy
    return max(1, cores - busy)


# MKL's conditional numerical reproducibility (CNR): in strict mode a matrix product gives the same bits on any
# number of threads. Without it fp32 logits moved by ~1e-8 between 1 and 2 threads here (a run's written scores
# with them); with it CPU time per pair was the same (AMD EPYC, 2 cores, MiniLM-L6 pairs).
MKL_CBWR = "MKL_CBWR"
REPRODUCIBLE_MKL = "AUTO,STRICT"


def reproducible_blas() -> str:
    """Ask MKL for results that do not depend on the thread count, unless the environment already chose a mode.

    MKL reads the mode once, at its first call, so this works only before the process's first matrix product:
    the commands that write runs call it before any model runs, and the Ray workers set the same mode as the
    process that sends them pairs. Returns the mode asked for."""
    return os.environ.setdefault(MKL_CBWR, REPRODUCIBLE_MKL)


def configure_threads(threads: int | None = None, device: str = "cpu") -> int:
    """Set torch's intra-op threads (default: `intra_op_threads()`); on the CPU, tokenizers single-threaded.

    On the CPU tokenizer threads would compete with torch's for the same cores. With a GPU doing the
    arithmetic, tokenizing is the bottleneck (measured on an H200: the forward pass of 128 SciFact
    pairs ran at ~5,800 pairs/s in fp32, tokenizing on one thread at ~1,300), so it stays parallel.
    """
    import torch

    if device == "cpu":
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    threads = intra_op_threads() if threads is None else threads
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


class PairCostMeter:
    """Measured milliseconds per freshly scored pair, per model key (exponential moving average)."""

    def __init__(self, smoothing: float = 0.3) -> None:
        self._ms: dict[str, float] = {}
        self._smoothing = smoothing
        self._lock = threading.Lock()

    def record(self, key: str, pairs: int, ms: float) -> None:
        if pairs <= 0 or ms <= 0:
            return
        value = ms / pairs
        with self._lock:
            old = self._ms.get(key)
            self._ms[key] = value if old is None else (1 - self._smoothing) * old + self._smoothing * value

    def per_pair_ms(self, key: str) -> float | None:
        with self._lock:
            return self._ms.get(key)


PAIR_COSTS = PairCostMeter()


@contextlib.contextmanager
def timed_ms() -> Iterator[list[float]]:
    """`with timed_ms() as t: ...` then t[0] holds elapsed milliseconds."""
    import time

    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = (time.perf_counter() - start) * 1000
