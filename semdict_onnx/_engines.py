"""Where a dataset scan runs: in this process (the default), or on Ray Data (`RayEngine`).

This module only describes the choice and checks it; it imports no Ray. The scan itself is
_dataset_scan.py's, and the Ray scheduling _ray_engine.py's, imported only for a Ray engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._checks import positive_int
from .errors import OptionError

LOCAL = "local"
RAY = "ray"
ENGINES = (LOCAL, RAY)


@dataclass(frozen=True)
class RayEngine:
    """Run a dataset scan on Ray Data: a pool of actors, each with one ONNX Runtime session.

    `address` is the Ray cluster to join ("auto", "ray://host:10001", ...; default: the Ray
    instance this process already started, else a new local one). `workers` is the number of
    actors (default: as many as the cluster's CPUs, or GPUs when `gpus_per_worker` is set,
    allow). Each actor reserves `cpus_per_worker` CPUs, which its session runs on, and
    `gpus_per_worker` GPUs (a fraction shares one): with GPUs it runs on CUDA.
    """

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.workers is not None:
            positive_int(self.workers, "workers")
        positive_int(self.cpus_per_worker, "cpus_per_worker")
        if isinstance(self.gpus_per_worker, bool) or not (
            isinstance(self.gpus_per_worker, (int, float)) and self.gpus_per_worker >= 0
        ):
            raise OptionError(
                f"gpus_per_worker must be a number of GPUs of at least 0 (a fraction shares a "
                f"GPU between actors), not {self.gpus_per_worker!r}"
            )
        if self.address is not None and not isinstance(self.address, str):
            raise OptionError(f"address must be a Ray address string, not {self.address!r}")


def resolve_engine(engine: str | RayEngine) -> RayEngine | None:
    """The Ray engine asked for, or None for the local one ("local")."""
    if isinstance(engine, RayEngine):
        return engine
    if engine == LOCAL:
        return None
    if engine == RAY:
        return RayEngine()
    raise OptionError(
        f"engine must be {' or '.join(repr(e) for e in ENGINES)} or a RayEngine(...), "
        f"not {engine!r}"
    )
