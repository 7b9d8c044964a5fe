import itertools
import json

import pytest

from inspatio_sim.bench.contract import HEADLINE, SOAK_ENV_KEYS, SOAK_ROS_KEYS, check_bench_json
from inspatio_sim.bench.soak_bench import growth_pct, rss_mb
from inspatio_sim.cli import main
from inspatio_sim.errors import ConfigError


def test_growth_is_measured_after_the_warm_up():
    series = [100.0, 150.0, 200.0, 200.0, 200.0, 201.0, 202.0, 202.0, 202.0, 204.0, 210.0]
    start, end, growth = growth_pct(series, 0.2)  # from the sample at 20 % of the run: index 2
    assert (start, end) == (200.0, 210.0) and growth == pytest.approx(5.0)
    assert growth_pct(series, 0.0)[2] == pytest.approx(110.0)  # no warm-up: the start-up fill counts
    assert growth_pct([100.0, 90.0], 0.5) == (100.0, 90.0, -10.0)  # never starts at the last sample
    with pytest.raises(ConfigError, match="two samples"):
        growth_pct([1.0], 0.1)


def test_rss_reads_this_process_and_names_a_missing_one():
    assert 50 < rss_mb() < 64_000
    with pytest.raises(ConfigError, match="cannot read the memory of process"):
        rss_mb(2**22 + 12345)


def test_soak_env_phase_tiny_follows_the_contract(tmp_path):
    rc = main(["bench", "soak", "--quick", "--out", str(tmp_path), "scene=small", "bench.soak.env_steps=300",
               "bench.soak.samples=10", "bench.soak.num_envs=2", "bench.soak.ros_minutes=0"])
    assert rc == 0
    path = tmp_path / "bench_soak.json"
    # the ROS phase was switched off: exactly its headline keys are missing, and the JSON says why
    assert check_bench_json(path) == [f"headline metric '{k}' missing" for k in SOAK_ROS_KEYS]
    assert HEADLINE["soak"] == SOAK_ENV_KEYS + SOAK_ROS_KEYS
    doc = json.loads(path.read_text())
    assert doc["config"]["ros_phase"] == "skipped: bench.soak.ros_minutes=0"
    m = doc["metrics"]
    assert set(m) == {*SOAK_ENV_KEYS, "soak_env_rss_mb_after_reset"}
    rows = doc["series"]["env_step_seconds_rss_mb"]
    assert [r[0] for r in rows] == [30.0 * k for k in range(11)]  # after reset, then 10 evenly spaced samples
    assert all(b[1] >= a[1] for a, b in itertools.pairwise(rows))  # time runs forward
    assert m["soak_env_rss_mb_start"] == rows[1][2] and m["soak_env_rss_mb_end"] == rows[-1][2]  # warm-up 10 %
    assert m["soak_env_rss_growth_pct"] == pytest.approx(
        100 * (m["soak_env_rss_mb_end"] - m["soak_env_rss_mb_start"]) / m["soak_env_rss_mb_start"])
    assert 100 < m["soak_env_rss_mb_end"] < 16_000 and abs(m["soak_env_rss_growth_pct"]) < 50
    assert 1.0 < m["soak_env_steps_per_s"] < 1e5
    assert "| 300 |" in (tmp_path / "bench_soak.md").read_text()


def test_soak_rejects_bad_settings(tmp_path):
    with pytest.raises(ConfigError, match="samples"):
        from inspatio_sim.bench.soak_bench import run
        from inspatio_sim.config import compose

        run(compose(["bench.soak.samples=1"]), False, "cpu", str(tmp_path))
