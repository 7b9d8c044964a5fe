"""Frame input: videos and image folders, sampling, downscaling, grayscale, variable frame rate, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspatio_sim.errors import ConfigError, ReconError
from inspatio_sim.recon.frames import FrameSelection, read_frames
from inspatio_sim.video_io import write_video
from tests.helpers import checker


def _frames(n: int = 20, h: int = 48, w: int = 64) -> np.ndarray:
    big = checker(h, w + 2 * n, 4, seed=3)
    return np.stack([big[:, 2 * i:2 * i + w] for i in range(n)])


def _folder(tmp_path, frames: np.ndarray, gray: bool = False, times: np.ndarray | None = None):
    d = tmp_path / "imgs"
    d.mkdir()
    for i, f in enumerate(frames):  # names sort naturally: frame2 before frame10
        img = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if gray else cv2.cvtColor(f, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(d / f"frame{i}.png"), img)
    if times is not None:
        (d / "timestamps.txt").write_text("\n".join(f"{t:.6f}" for t in times))
    return d


def test_video_roundtrip_and_sampling(tmp_path):
    frames = _frames(30)
    video = write_video(frames, tmp_path / "clip.avi", fps=10.0)
    fs = read_frames(video, FrameSelection(), progress=False)
    assert fs.images.shape == (30, 48, 64, 3) and fs.images.dtype == np.uint8
    np.testing.assert_allclose(fs.timestamps, np.arange(30) / 10.0, atol=1e-6)
    assert np.abs(fs.images.astype(int) - frames.astype(int)).mean() < 8  # MJPG is lossy
    fs = read_frames(video, FrameSelection(stride=3, start=0.5, end=2.0), progress=False)
    np.testing.assert_allclose(fs.timestamps, [0.5, 0.8, 1.1, 1.4, 1.7, 2.0], atol=1e-6)
    fs = read_frames(video, FrameSelection(fps=2.5), progress=False)
    np.testing.assert_allclose(np.diff(fs.timestamps), 0.4, atol=1e-6)
    fs = read_frames(video, FrameSelection(max_frames=7), progress=False)
    assert len(fs.images) == 7 and fs.timestamps[0] == 0 and fs.timestamps[-1] >= 2.7  # spread over the clip
    assert np.diff(fs.timestamps).max() <= 0.8 + 1e-6


def test_folder_natural_order_downscale_and_grayscale(tmp_path):
    frames = _frames(12)
    big = np.stack([cv2.resize(f, (640, 480), interpolation=cv2.INTER_NEAREST) for f in frames])
    d = _folder(tmp_path, big, gray=True)
    fs = read_frames(d, FrameSelection(max_size=128), progress=False)
    assert fs.images.shape == (12, 96, 128, 3)
    assert fs.source_size == (640, 480) and fs.scale == pytest.approx(0.2)
    assert any("downscaled 640x480" in n for n in fs.notes)
    assert any("grayscale" in n for n in fs.notes)
    assert np.array_equal(fs.images[..., 0], fs.images[..., 2])
    # natural order: frame2 comes before frame10, so the texture keeps sliding one way
    expect = cv2.resize(cv2.cvtColor(cv2.cvtColor(big[10], cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB), (128, 96),
                        interpolation=cv2.INTER_AREA)
    assert np.abs(fs.images[10].astype(int) - expect.astype(int)).max() <= 1


def test_variable_frame_rate_folder_keeps_times(tmp_path):
    times = np.cumsum(np.r_[0.0, np.tile([0.05, 0.15], 7)])
    d = _folder(tmp_path, _frames(15), times=times)
    fs = read_frames(d, FrameSelection(), progress=False)
    np.testing.assert_allclose(fs.timestamps, times)
    assert any("variable frame rate" in n for n in fs.notes)
    fs = read_frames(d, FrameSelection(fps=4.0), progress=False)
    assert np.all(np.diff(fs.timestamps) >= 0.25 - 1e-6)


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ReconError, match="does not exist"):
        read_frames(tmp_path / "nope.mp4", FrameSelection(), progress=False)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ReconError, match=r"cannot open|no decodable"):
        read_frames(corrupt, FrameSelection(), progress=False)
    one = write_video(_frames(1), tmp_path / "one.avi", fps=10.0)
    with pytest.raises(ReconError, match="1 usable frame"):
        read_frames(one, FrameSelection(), progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReconError, match="holds no images"):
        read_frames(empty, FrameSelection(), progress=False)
    d = _folder(tmp_path, _frames(5))
    (d / "timestamps.txt").write_text("0\n1\n")
    with pytest.raises(ReconError, match="2 times for 5 images"):
        read_frames(d, FrameSelection(), progress=False)
    with pytest.raises(ConfigError, match=r"recon\.stride"):
        read_frames(d, FrameSelection(stride=0), progress=False)
