import json

import pytest

from inspatio_sim.bench.contract import HEADLINE, check_bench_json
from inspatio_sim.cli import main

pytest.importorskip("ray", reason="Ray is not installed (pip install .[ray])")


def test_ray_bench_writes_the_contract_and_its_figures(tmp_path):
    # a small version (16x16, B=2 per actor, no reconstruction): the full run is `inspatio-sim bench ray`
    rc = main(["bench", "ray", "--quick", "--out", str(tmp_path), "scene=small", "cluster.bench.resolution=16",
               "cluster.bench.envs_per_actor=2", "cluster.bench.steps=3", "cluster.bench.clips=0",
               "cluster.object_store_mb=100"])
    assert rc == 0
    path = tmp_path / "bench_ray.json"
    present = {"ray_speedup_vs_native_same_agents", "ray_step_overhead_ms"}
    assert check_bench_json(path) == [f"headline metric '{k}' missing" for k in HEADLINE["ray"] if k not in present]
    m = json.loads(path.read_text())["metrics"]
    assert set(m) == {"native_fps_16_b2", "native_fps_16_b4", "ray_fps_16_b2x2", "ray_speedup_vs_native_same_agents",
                      "ray_step_overhead_ms", "ray_step_ms", "native_step_ms_b2"}
    for key in ("native_fps_16_b2", "native_fps_16_b4", "ray_fps_16_b2x2"):
        assert 0.0 < m[key] < 1e6, (key, m[key])  # its size depends on the machine's load
    assert m["ray_speedup_vs_native_same_agents"] == pytest.approx(m["ray_fps_16_b2x2"] / m["native_fps_16_b4"])
    assert m["ray_step_overhead_ms"] == pytest.approx(m["ray_step_ms"] - m["native_step_ms_b2"])
