"""Ray sessions: start a local Ray instance, or join a running cluster (``--address auto|HOST:PORT``).

A session started here is shut down when the ``with`` block ends; joining a cluster (or a Ray already initialised
by the caller, e.g. a test's cluster) leaves it running. Code on the cluster's nodes must import the same
``inspatio_sim`` and ``envs`` (install the package on every node, or start the nodes with the same ``PYTHONPATH``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from inspatio_sim.errors import ConfigError, InSpatioError

log = logging.getLogger(__name__)


class ClusterError(InSpatioError):
    """Ray is missing, the cluster cannot be reached, or a distributed job cannot run."""


@dataclass
class ClusterBench:
    """``cluster.bench``: sizes of ``inspatio-sim bench ray``."""

    resolution: int = 64  # square camera size of the rollout comparison (pixels)
    envs_per_actor: int = 16  # agents B per Ray actor (and of the native vector env compared)
    num_actors: int = 2  # Ray actors of the Ray vector env (each its own World and Simulator)
    steps: int = 200  # timed vector steps per case (--quick: 40)
    clips: int = 4  # copies of the oracle clip reconstructed with 1 and with 2 workers (--quick: 2; 0 skips)
    cpus_per_clip: float | None = None  # CPUs of one worker in the clips/hour case (null = half the cores)

    def validate(self) -> None:
        for name in ("resolution", "envs_per_actor", "num_actors", "steps"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"cluster.bench.{name} must be > 0, got {getattr(self, name)}")
        if self.cpus_per_clip is not None and not self.cpus_per_clip > 0:
            raise ConfigError(f"cluster.bench.cpus_per_clip must be > 0 or null, got {self.cpus_per_clip}")
        if self.clips < 0:
            raise ConfigError(f"cluster.bench.clips must be >= 0, got {self.clips}")


@dataclass
class ClusterConfig:
    """``cluster``: the Ray cluster of ``reconstruct-many`` and the Ray vector env."""

    address: str | None = None  # Ray cluster to join (auto, HOST:PORT, ray://...); null = start a local instance
    num_cpus: int | None = None  # CPUs of a local instance (null = all of this machine)
    object_store_mb: int | None = None  # object store of a local instance (MB; null = Ray's default)
    cpus_per_clip: float = 2.0  # CPUs declared by each reconstruct-many task (also pycolmap's threads)
    gpus_per_clip: float = 1.0  # GPUs declared by each reconstruct-many task when device is cuda
    actor_cpus: float = 1.0  # CPUs declared by each Ray vector env actor
    actor_gpus: float = 1.0  # GPUs declared by each Ray vector env actor when device is cuda
    bench: ClusterBench = field(default_factory=ClusterBench)

    def validate(self) -> None:
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ConfigError(f"cluster.num_cpus must be >= 1 or null, got {self.num_cpus}")
        if self.object_store_mb is not None and self.object_store_mb < 50:
            raise ConfigError(f"cluster.object_store_mb must be >= 50 or null, got {self.object_store_mb}")
        for name in ("cpus_per_clip", "actor_cpus"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"cluster.{name} must be > 0, got {getattr(self, name)}")
        for name in ("gpus_per_clip", "actor_gpus"):
            if getattr(self, name) < 0:
                raise ConfigError(f"cluster.{name} must be >= 0, got {getattr(self, name)}")
        self.bench.validate()


def require_ray() -> ModuleType:
    """The ``ray`` module, or :class:`ClusterError` with the install hint."""
    try:
        import ray
    except ImportError as e:
        raise ClusterError("Ray is not installed: `pip install inspatio-sim[ray]` (or `pip install 'ray[default]'`)"
                           ) from e
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None, object_store_mb: int | None = None,
                log_to_driver: bool = False) -> Iterator[Any]:
    """A connected Ray: the caller's if already initialised, else a joined cluster (``address``) or a new local
    instance (``num_cpus``, ``object_store_mb``); yields the ``ray`` module. Only a Ray started or joined here is
    disconnected at the end.

    Raises:
        ClusterError: Ray is missing or the cluster at ``address`` cannot be reached.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"log_to_driver": log_to_driver, "logging_level": logging.WARNING}
    if address:
        kwargs["address"] = address
    else:
        kwargs.update(num_cpus=num_cpus, include_dashboard=False,
                      object_store_memory=None if object_store_mb is None else int(object_store_mb) << 20)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at '{address}'" if address else "a local Ray instance"
        raise ClusterError(f"cannot start or join {where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                           ) from e
    try:
        yield ray
    finally:
        ray.shutdown()


def cluster_cpus(ray: Any) -> float:
    """CPUs of the connected cluster (all nodes)."""
    return float(ray.cluster_resources().get("CPU", 0.0))
