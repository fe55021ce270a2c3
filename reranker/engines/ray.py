"""The ray engine: a query set's (query, window) pairs scored by Ray Data `map_batches` on actors that each
hold the cross-encoder (one GPU each when the cluster has GPUs), on this machine or a cluster (`--address`).

The queries themselves run in this process (first stage, windows, aggregation, blend); each round of their
pairs (reranker.engines.jobs) becomes a dataset with one row per job, one query's pairs for one model, and
each actor scores a row with `CrossEncoderReranker.model_scores`, the local engine's function, on the same
pairs in the same batches: at fp32 on the same kind of device the scores, and so the runs, are identical.
(Rows of single pairs would let Ray regroup them into other model batches, which moves logits by ~1e-6.)

Workers load the model from the directory it resolved to here when they have it (a local cluster always
does), else from its spec (a hub id resolves on each worker). On a remote cluster every node needs this
package installed, e.g. `pip install "rerank-lens[ray]"`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from reranker.engines.jobs import PairJob, ScorerSpec, run_in_rounds
from reranker.errors import ConfigError
from reranker.speed import MKL_CBWR

logger = logging.getLogger(__name__)

K = TypeVar("K")
R = TypeVar("R")
INSTALL_HINT = 'pip install "rerank-lens[ray]" (or pip install "ray[data]")'
CONNECT_TIMEOUT_S = 5.0
BLOCKS_PER_WORKER = 4  # rows are split into this many blocks per actor, so a slow job does not idle the others


class PairScorer:
    """A Ray Data actor: loads the cross-encoder once, then scores each row's pairs (one job) in one call."""

    def __init__(self, spec: ScorerSpec, device: str, threads: int) -> None:
        # Before this process's first matrix product: MKL reads its reproducibility mode once.
        if spec.blas is None:
            os.environ.pop(MKL_CBWR, None)
        else:
            os.environ[MKL_CBWR] = spec.blas
        from reranker.cross_encoder import CrossEncoderReranker

        self.spec = spec
        self.threads = threads
        model = spec.path if Path(spec.path).is_dir() else spec.model
        self.scorer = CrossEncoderReranker(model, spec.settings, device=device, cache=None)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        from reranker.speed import configure_threads

        configure_threads(self.threads, device=self.scorer.device)
        scores = []
        for queries, windows in zip(batch.column("queries").to_pylist(), batch.column("windows").to_pylist(), strict=True):
            pairs = list(zip(queries, windows, strict=True))
            raw = self.scorer.model_scores(
                None if self.spec.by_ids else pairs,
                pairs if self.spec.by_ids else None,
                precision=self.spec.settings.precision,
                batch_size=self.spec.settings.batch_size,
            )
            scores.append(np.asarray(raw, dtype=np.float64).tolist())
        return pa.table({"job": batch.column("job"), "scores": scores})


class RayEngine:
    """Scores the cross-encoder pairs of a query set on Ray actors; everything else runs in this process."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, worker_cpus: int = 1) -> None:
        self._ray = import_ray()
        if address not in (None, "auto", "local"):
            check_reachable(address)
        self.address = address
        self.workers = workers
        self.worker_cpus = worker_cpus
        self._started = False
        self._connected = False

    # ------------------------------------------------------------ cluster

    def connect(self) -> None:
        """Join the cluster (or start one on this machine); a running Ray in this process is used as it is."""
        ray = self._ray
        if self._connected:
            return
        if not ray.is_initialized():
            quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
            try:
                # Workers on this machine find this package as this process does: installed, on the inherited
                # PYTHONPATH, or in the current directory (Ray puts it on their path), e.g. a checkout's root.
                if self.address in (None, "local"):
                    ray.init(include_dashboard=False, **quiet)
                else:
                    ray.init(address=self.address, **quiet)
                self._started = True
            except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
                raise ConfigError(f"could not start or join {where}: {exc}".strip()) from None
        context = self._ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # no line per dataset; failures raise here anyway
        self._connected = True

    def plan(self) -> tuple[int, int, int]:
        """(actors, CPUs each, GPUs each) for this cluster, refused when the cluster cannot hold them."""
        resources = self._ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        if gpus:
            workers = self.workers or gpus
            if workers > gpus:
                raise ConfigError(f"--workers {workers}: the Ray cluster has {gpus} GPU(s), one per worker")
            return workers, self.worker_cpus, 1
        workers = self.workers or max(1, cpus // self.worker_cpus)
        if workers * self.worker_cpus > cpus:
            raise ConfigError(
                f"--workers {workers} with --worker-cpus {self.worker_cpus} needs {workers * self.worker_cpus} CPUs; "
                f"the Ray cluster has {cpus}"
            )
        return workers, self.worker_cpus, 0

    # ------------------------------------------------------------ scoring

    def run(self, calls: Iterable[tuple[K, Callable[[], R]]]) -> Iterator[tuple[K, R]]:
        """Each call's key and result, in order, their cross-encoder pairs scored on the cluster (joined, or
        started, when the first pairs are ready: a query set with nothing to rerank needs no cluster)."""
        yield from run_in_rounds(calls, self.score_jobs)

    def score_jobs(self, jobs: Sequence[PairJob]) -> list[np.ndarray]:
        """Each job's raw scores, in order: one Ray Data pass per model, one row per job."""
        self.connect()
        workers, cpus, gpus = self.plan()
        out: list[np.ndarray | None] = [None] * len(jobs)
        by_spec: dict[ScorerSpec, list[int]] = {}
        for index, job in enumerate(jobs):
            by_spec.setdefault(job.spec, []).append(index)
        for spec, indices in by_spec.items():
            rows = [_row(i, jobs[i]) for i in indices]
            actors = min(workers, len(rows))  # a round of fewer jobs than workers starts no idle actor
            dataset = self._ray.data.from_items(rows, override_num_blocks=min(len(rows), actors * BLOCKS_PER_WORKER))
            scored = dataset.map_batches(
                PairScorer,
                fn_constructor_kwargs={"spec": spec, "device": "cuda" if gpus else "cpu", "threads": cpus},
                batch_size=1,
                batch_format="pyarrow",
                compute=self._ray.data.ActorPoolStrategy(size=actors),
                num_cpus=cpus,
                num_gpus=gpus,
            )
            for batch in scored.iter_batches(batch_format="pyarrow", batch_size=None):
                for index, values in zip(batch.column("job").to_pylist(), batch.column("scores").to_pylist(), strict=True):
                    out[index] = np.asarray(values, dtype=np.float64)
        missing = [i for i, scores in enumerate(out) if scores is None]
        if missing:
            raise RuntimeError(f"the Ray cluster returned no scores for {len(missing)} of {len(jobs)} jobs")
        return out  # type: ignore[return-value]

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False
        self._connected = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _row(index: int, job: PairJob) -> dict[str, Any]:
    """A job as one dataset row: its pairs' query and window token ids (or texts), keyed by its index."""
    if job.spec.by_ids:
        assert job.pair_ids is not None
        return {"job": index, "queries": [list(q) for q, _ in job.pair_ids], "windows": [list(w) for _, w in job.pair_ids]}
    return {"job": index, "queries": [q for q, _ in job.pairs], "windows": [w for _, w in job.pairs]}


def import_ray() -> Any:
    """The ray module with Ray Data, or a ConfigError that says how to install it."""
    try:
        import ray
        import ray.data  # the engine needs Ray Data, not only Ray core
    except ImportError as exc:
        raise ConfigError(f"--engine ray needs Ray Data, which is not installed ({exc}): {INSTALL_HINT}") from None
    return ray


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, within `timeout` seconds, an address where nothing listens (ray.init would wait for minutes)."""
    target = address if "://" in address else f"//{address}"
    try:
        parts = urlsplit(target)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise ConfigError(f"--address {address!r}: give host:port (e.g. 10.0.0.5:6379), ray://host:port or auto")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"--address {address}: no Ray cluster answers there ({reason}). Start one with `ray start --head` "
            "(it prints the address to use), or leave --address off to start one on this machine."
        ) from None
