import json

from inspatio_sim.cli import main
from tests.bench.test_render_bench import _checker


def test_env_bench_writes_the_contract_and_its_figures(tmp_path):
    # a small version (B=2 for the Sync/Async comparison, so no headline b16 keys): the full run is `bench env`
    rc = main(["bench", "env", "--quick", "--out", str(tmp_path), "scene=small", "bench.env.batch_sizes=[1,2]",
               "bench.env.resolutions=[64]", "bench.env.seconds_per_case=0.2", "bench.env.compare_batch=2"])
    assert rc == 0
    path = tmp_path / "bench_env.json"
    problems = [p for p in _checker().check(str(path)) if not p.startswith("headline")]
    assert problems == []
    m = json.loads(path.read_text())["metrics"]
    for key in ("native_fps_64_b1", "native_fps_64_b2", "sync_fps_64_b2", "async_fps_64_b2"):
        assert m[key] > 0
    assert m["speedup_vs_sync_64_b2"] == m["native_fps_64_b2"] / m["sync_fps_64_b2"]
    assert 0 <= m["mem_mb_per_env_128"] < 50
