import pytest
import torch

from inspatio_sim.errors import ConfigError
from inspatio_sim.world.timeline import frame_index, video_time

TS = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4], dtype=torch.float64)


def test_loop_wraps_after_one_period():
    t = torch.tensor([0.0, 0.12, 0.4, 0.5, 0.62, 1.0])
    assert frame_index(t, TS, "loop").tolist() == [0, 1, 4, 0, 1, 0]


def test_pingpong_reverses():
    t = torch.tensor([0.0, 0.3, 0.4, 0.5, 0.8, 0.9])
    assert frame_index(t, TS, "pingpong").tolist() == [0, 3, 4, 3, 0, 1]


def test_clamp_and_frozen():
    t = torch.tensor([-1.0, 0.21, 9.0])
    assert frame_index(t, TS, "clamp").tolist() == [0, 2, 4]
    assert frame_index(t, TS, "frozen").tolist() == [0, 0, 0]
    assert frame_index(t, TS, "frozen", frozen_time=0.29).tolist() == [3, 3, 3]


def test_offset_timestamps_and_single_frame():
    assert frame_index(torch.tensor([0.1]), TS + 5.0, "clamp").tolist() == [1]
    assert frame_index(torch.tensor([3.0]), TS[:1], "loop").tolist() == [0]
    assert float(video_time(torch.tensor([0.45]), TS, "loop")[0]) == pytest.approx(0.4)


def test_unknown_mode():
    with pytest.raises(ConfigError, match="time_mode"):
        frame_index(torch.tensor([0.0]), TS, "rewind")
