import json

import pytest

from inspatio_sim.bench.contract import HEADLINE, check_bench_json
from inspatio_sim.cli import main


def test_env_bench_writes_the_contract_and_its_figures(tmp_path):
    # a small version (B=2 for the Sync/Async comparison, so no headline b16 keys): the full run is `bench env`
    rc = main(["bench", "env", "--quick", "--out", str(tmp_path), "scene=small", "bench.env.batch_sizes=[1,2]",
               "bench.env.resolutions=[64]", "bench.env.seconds_per_case=0.2", "bench.env.compare_batch=2"])
    assert rc == 0
    path = tmp_path / "bench_env.json"
    present = {"native_fps_64_b1", "mem_mb_per_env_128"}
    assert check_bench_json(path) == [f"headline metric '{k}' missing" for k in HEADLINE["env"] if k not in present]
    m = json.loads(path.read_text())["metrics"]
    assert set(m) == {"native_fps_64_b1", "native_fps_64_b2", "sync_fps_64_b2", "async_fps_64_b2",
                      "speedup_vs_sync_64_b2", "speedup_vs_async_64_b2", "mem_mb_per_env_128", "peak_mb_128_b1"}
    for key in ("native_fps_64_b1", "native_fps_64_b2", "sync_fps_64_b2", "async_fps_64_b2"):
        # frames/s of a 64x64 camera: finite and positive (its size depends on the machine's load), not absurd
        assert 0.0 < m[key] < 1e6, (key, m[key])
    assert m["speedup_vs_sync_64_b2"] == pytest.approx(m["native_fps_64_b2"] / m["sync_fps_64_b2"])
    assert m["speedup_vs_async_64_b2"] == pytest.approx(m["native_fps_64_b2"] / m["async_fps_64_b2"])
    assert 0 <= m["mem_mb_per_env_128"] < 50
    assert 100 < m["peak_mb_128_b1"] < 8000  # a Python process with torch and a World
