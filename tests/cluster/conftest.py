"""One real two-node Ray cluster on loopback for the whole package (``ray.cluster_utils.Cluster``): small CPU
counts, 100 MB object stores, no dashboard; shut down at the end, with a check that none of its processes is left."""

from __future__ import annotations

import contextlib
import os
import subprocess

import pytest

try:
    import ray
except ImportError:  # the test modules skip themselves with the reason
    ray = None


@pytest.fixture(scope="package")
def ray_cluster():
    """A head and a worker node, one CPU each, both on 127.0.0.1; the test process is not connected to it (tests
    connect with ``ray.init(address=cluster.address)`` or through the code under test, and disconnect)."""
    if ray is None:
        pytest.skip("Ray is not installed (pip install .[ray])")
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    # loopback only: Ray would otherwise advertise the machine's external address (may be firewalled)
    saved = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"), ray_constants.ENABLE_RAY_CLUSTER
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # inherited by the nodes' processes
    ray_constants.ENABLE_RAY_CLUSTER = False
    node_args = {"num_cpus": 1, "object_store_memory": 100 << 20, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    try:
        cluster.add_node(**node_args)
        cluster.wait_for_nodes()
        procs = [p.process for node in [cluster.head_node, *cluster.worker_nodes]
                 for infos in node.all_processes.values() for p in infos]
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        if saved[0] is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = saved[0]
        ray_constants.ENABLE_RAY_CLUSTER = saved[1]
    for p in procs:  # no leaked raylet / GCS / plasma processes
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=10)
    assert all(p.poll() is not None for p in procs), "Ray processes survived the cluster's shutdown"


@pytest.fixture
def connected(ray_cluster):
    """The test process connected to the cluster for one test, disconnected afterwards."""
    ray.init(address=ray_cluster.address, log_to_driver=False)
    yield ray_cluster
    ray.shutdown()
