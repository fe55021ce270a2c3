"""Where the cross-encoder's (query, window) pairs of a query set are scored: in this process (`local`, the
default) or on Ray actors that each hold the model (`ray`, Ray Data `map_batches`).

Both run the same function, `CrossEncoderReranker.model_scores`, on the same pairs in the same batches,
and the queries themselves run the pipeline's own code (`RerankStages.rerank`, `Pipeline.search`) in this
process, so an fp32 run is identical on both engines (reranker.engines.jobs says how). Ray is imported only
when the ray engine opens; the local engine never imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from reranker.errors import ConfigError

K = TypeVar("K")
R = TypeVar("R")
EngineName = Literal["local", "ray"]


@dataclass(frozen=True)
class EngineConfig:
    """Where a query set's cross-encoder pairs are scored.

    Attributes:
        engine: local (this process) or ray (Ray Data actors that each hold the model, on this machine or a cluster).
        address: The Ray cluster to join: host:port, ray://host:port or auto; None starts one on this machine.
        workers: Ray actors, each holding a copy of the model; None: one per GPU when the cluster has GPUs, else one per CPU.
        worker_cpus: CPUs (and torch threads) each Ray actor reserves.
    """

    engine: EngineName = "local"
    address: str | None = None
    workers: int | None = None
    worker_cpus: int = 1

    def validate(self) -> None:
        if self.engine not in ("local", "ray"):
            raise ConfigError(f"engine must be local or ray, not {self.engine!r}")
        if self.engine == "local" and (self.address is not None or self.workers is not None):
            raise ConfigError("--address and --workers choose a Ray cluster: add --engine ray")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, not {self.workers}")
        if self.worker_cpus < 1:
            raise ConfigError(f"--worker-cpus must be at least 1, not {self.worker_cpus}")


class Engine(Protocol):
    """Runs a query set's calls (each returns one query's result) and scores their cross-encoder pairs."""

    name: str

    def run(self, calls: Iterable[tuple[K, Callable[[], R]]]) -> Iterator[tuple[K, R]]:
        """Each call's key and result, in the order given."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc: object) -> None: ...


def open_engine(config: EngineConfig | None = None) -> Engine:
    """The engine a config names; for ray, checks that ray is installed and the address answers (ConfigError if not)."""
    config = config or EngineConfig()
    config.validate()
    if config.engine == "local":
        from reranker.engines.local import LocalEngine

        return LocalEngine()
    from reranker.engines.ray import RayEngine

    return RayEngine(address=config.address, workers=config.workers, worker_cpus=config.worker_cpus)
