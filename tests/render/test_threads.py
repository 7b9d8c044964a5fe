"""Thread policy: threads from the CPUs free of other work."""

import pytest
import torch

from inspatio_sim.errors import ConfigError
from inspatio_sim.render import threads
from inspatio_sim.render.threads import ThreadPolicy, parse_threads, usable_cpus


def test_parse_threads():
    assert parse_threads("auto") is None and parse_threads(" AUTO ") is None
    assert parse_threads("3") == 3 and parse_threads(2) == 2
    for bad in ("0", "-1", "many", ""):
        with pytest.raises(ConfigError, match=r"render\.threads must be 'auto' or a positive integer"):
            parse_threads(bad)


def _fake_machine(monkeypatch, usable: int, elsewhere_cores: float):
    """A machine with ``usable`` CPUs on which other processes keep ``elsewhere_cores`` cores busy."""
    clock = {"t": 0.0, "busy": 0.0, "own": 0.0}

    def busy(_cpus):
        clock["t"] += 1.0
        clock["busy"] += elsewhere_cores + 0.5  # this process: 0.5 core of the second
        clock["own"] += 0.5
        return clock["busy"], clock["t"]

    monkeypatch.setattr(threads, "_busy_seconds", busy)
    monkeypatch.setattr(threads, "usable_cpus", lambda: usable)
    monkeypatch.setattr(threads.time, "process_time", lambda: clock["own"])
    monkeypatch.setattr(threads, "REFRESH_S", 0.0)


@pytest.mark.parametrize(("usable", "elsewhere", "expected"), [(2, 0.0, 2), (2, 1.0, 1), (2, 2.0, 1), (8, 2.6, 5),
                                                               (2, 0.3, 2)])
def test_auto_uses_the_cpus_free_of_other_work(monkeypatch, usable, elsewhere, expected):
    _fake_machine(monkeypatch, usable, elsewhere)
    policy = ThreadPolicy()
    assert policy.auto_threads() == expected
    assert policy.auto_threads() == expected  # steady: its own work is not counted as load
    assert policy.free_estimate == pytest.approx(max(0.0, usable - elsewhere))


def test_apply_sets_torch_threads_and_a_fixed_setting_wins(monkeypatch):
    _fake_machine(monkeypatch, 2, 1.0)
    before = torch.get_num_threads()
    try:
        policy = ThreadPolicy()
        assert policy.apply("auto") == 1 and torch.get_num_threads() == 1
        assert policy.apply("2") == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_usable_cpus_is_positive():
    assert usable_cpus() >= 1
