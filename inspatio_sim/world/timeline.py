"""Scene time modes: map simulation time (seconds) to a frame of the source video.

Modes:
  * ``loop``: the video repeats; period = duration + one mean frame interval (the last frame is not doubled).
  * ``pingpong``: forward then backward, period = 2 * duration.
  * ``clamp``: times before the start show the first frame, after the end the last frame.
  * ``frozen``: always the frame closest to ``frozen_time`` (seconds of video time, default 0).
Simulation time 0 is the first frame of the video.
"""

from __future__ import annotations

import torch

from inspatio_sim.errors import ConfigError

TIME_MODES = ("loop", "pingpong", "clamp", "frozen")


def video_time(sim_time: torch.Tensor, timestamps: torch.Tensor, mode: str, frozen_time: float = 0.0) -> torch.Tensor:
    """Video time (seconds since the first frame) shown at each simulation time.

    Args:
        sim_time: ``(B,)`` float simulation times in seconds.
        timestamps: ``(N,)`` float64 frame timestamps of the Scene, strictly increasing.
        mode: One of :data:`TIME_MODES`.
        frozen_time: Video time shown in ``frozen`` mode.
    Returns:
        ``(B,)`` float64 video times in ``[0, duration]``.
    """
    if mode not in TIME_MODES:
        raise ConfigError(f"unknown world.time_mode '{mode}'; choose one of {', '.join(TIME_MODES)}")
    t = sim_time.to(torch.float64)
    n = timestamps.shape[0]
    duration = float(timestamps[-1] - timestamps[0])
    if n == 1 or mode == "frozen":
        value = frozen_time if mode == "frozen" else 0.0
        return torch.full_like(t, min(max(value, 0.0), duration))
    if mode == "clamp":
        return t.clamp(0.0, duration)
    if mode == "loop":
        period = duration + duration / (n - 1)
        return torch.remainder(t, period).clamp(max=duration)
    period = 2.0 * duration
    phase = torch.remainder(t, period)
    return torch.where(phase <= duration, phase, period - phase)


def frame_index(sim_time: torch.Tensor, timestamps: torch.Tensor, mode: str, frozen_time: float = 0.0) -> torch.Tensor:
    """Index ``(B,)`` int64 of the Scene frame nearest to the video time shown at ``sim_time``."""
    ts = timestamps.to(torch.float64)
    vt = video_time(sim_time, ts, mode, frozen_time) + ts[0]
    right = torch.searchsorted(ts, vt).clamp(max=ts.shape[0] - 1)
    left = (right - 1).clamp(min=0)
    pick_left = (vt - ts[left]).abs() <= (ts[right] - vt).abs()
    return torch.where(pick_left, left, right)
