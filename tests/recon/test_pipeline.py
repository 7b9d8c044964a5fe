"""End to end: oracle video → `reconstruct` → Scene, measured against ground truth; bad input refused clearly."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from inspatio_sim.bench.recon_bench import evaluate
from inspatio_sim.cli import main
from inspatio_sim.config import compose
from inspatio_sim.conventions import look_at
from inspatio_sim.errors import ReconError
from inspatio_sim.oracle import Oracle
from inspatio_sim.recon.pipeline import reconstruct
from inspatio_sim.recon.sfm import SfMOptions, run_sfm
from inspatio_sim.scene import Scene
from inspatio_sim.scene_source import load_scene
from inspatio_sim.video_io import write_video

ROOT = Path(__file__).resolve().parents[2]
SCENE = ["scene.oracle.width=240", "scene.oracle.height=180"]
"""The room's 60-frame path at 240x180. At 160x120 structure-from-motion itself gets fragile (see the README)."""


@pytest.fixture(scope="module")
def oracle_clip(tmp_path_factory):
    cfg = compose(SCENE)
    gt = load_scene(cfg.scene)
    video = write_video(gt.frames, tmp_path_factory.mktemp("clip") / "room.mp4", gt.meta.fps)
    return gt, video, cfg


@pytest.fixture(scope="module")
def reconstruction(oracle_clip, tmp_path_factory):
    gt, video, cfg = oracle_clip
    out = tmp_path_factory.mktemp("recon") / "world"
    recon = dict(cfg.recon)
    recon["camera_height"] = float(np.median(gt.poses[:, 2, 3]))
    scene, report = reconstruct(video, out, recon, progress=False)
    return gt, scene, report, out, recon, video


def test_reconstruction_matches_ground_truth(reconstruction):
    gt, scene, report, out, _, _ = reconstruction
    assert Scene.load(out).num_frames == scene.num_frames  # written, and loads back
    assert (out / "report.json").exists()
    idx = np.rint((scene.timestamps - scene.timestamps[0]) * gt.meta.fps).astype(int)
    m = evaluate(scene, gt, idx)
    # measured at this size over 3 runs: ATE 0.26-0.30 %, rel. rotation 0.11 deg, focal error < 0.25 %, scale error
    # 2-4 %, depth AbsRel 0.013-0.027 on 89 % of static pixels, dynamic IoU 0.59-0.66; bounds leave about 2x margin
    assert m["registered_fraction"] >= 0.95
    assert m["ate_percent_path"] < 0.6
    assert m["rel_rot_err_deg"] < 0.25
    assert m["focal_error_percent"] < 1.0
    assert m["scale_error_percent"] < 8.0
    assert m["depth_absrel"] < 0.05 and m["depth_delta125"] > 0.97 and m["depth_valid_fraction"] > 0.75
    assert m["dynamic_iou"] > 0.3
    # gravity: the reconstructed cameras look roughly horizontal like the oracle's, at the configured height
    assert abs(np.median(scene.poses[:, 2, 3]) - np.median(gt.poses[:, 2, 3])) < 0.05
    up = -scene.poses[:, :3, 1].mean(axis=0)
    assert up[2] / np.linalg.norm(up) > 0.95
    assert report["registered_frames"] == scene.num_frames and report["intrinsics"] == "estimated"
    assert set(report["seconds"]) >= {"decode", "sfm", "align", "depth", "dynamic", "total"}


def test_rerun_reuses_cached_sfm(reconstruction, tmp_path):
    _, scene, _, out, recon, video = reconstruction
    again, report = reconstruct(video, out, recon, progress=False)
    assert report["sfm_cached"] is True
    np.testing.assert_allclose(again.poses, scene.poses, atol=1e-9)


def _write(tmp_path, frames: np.ndarray) -> str:
    return str(write_video(frames, tmp_path / "clip.mp4", 10.0))


def test_static_camera_is_refused_and_nothing_written(oracle_clip, tmp_path):
    gt, _, cfg = oracle_clip
    out = tmp_path / "out"
    with pytest.raises(ReconError, match="does not move"):
        reconstruct(_write(tmp_path, np.repeat(gt.frames[:1], 12, axis=0)), out, cfg.recon, progress=False)
    assert not (out / "scene.npz").exists()


def test_pure_rotation_is_refused_quietly_leaving_nothing(oracle_clip, tmp_path, capfd):
    gt, _, cfg = oracle_clip
    yaw = np.deg2rad(np.linspace(-25, 25, 16))
    eye = gt.poses[0, :3, 3]
    poses = np.stack([look_at(eye, eye + Rotation.from_euler("z", a).apply(gt.poses[0, :3, 2])) for a in yaw])
    with Oracle("room", seed=0) as oracle:
        frames = oracle.render(poses, np.zeros(len(poses)), gt.K, gt.width, gt.height, supersample=1).rgb
    clip = _write(tmp_path, frames)
    capfd.readouterr()
    assert main(["reconstruct", clip, "-o", str(tmp_path / "out"), *SCENE]) == 2
    err = _messages(capfd.readouterr().err)
    # one line, and none of COLMAP's ~350 warnings (they stay in its log file, which goes with the staging folder)
    assert len(err) == 1 and err[0].startswith("inspatio-sim: error:") and "rotated" in err[0], err[:5]
    assert not (tmp_path / "out").exists()  # not even .cache/ is left behind
    # an existing output folder keeps exactly what it had
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ReconError, match="rotated"):
        reconstruct(clip, tmp_path / "out", cfg.recon, progress=False)
    assert _listing(tmp_path / "out") == {"notes.txt": b"mine"}


def test_textureless_video_is_refused(oracle_clip, tmp_path):
    _, _, cfg = oracle_clip
    x = np.linspace(0, 1, 160)
    frames = np.stack([np.broadcast_to((80 + 60 * np.clip(x * 1.5 - 0.02 * i, 0, 1))[None, :, None], (120, 160, 3))
                       for i in range(12)]).astype(np.uint8)
    with pytest.raises(ReconError, match="too few image features"):
        reconstruct(_write(tmp_path, frames), tmp_path / "out", cfg.recon, progress=False)


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    assert main(["reconstruct", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["reconstruct", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o"), "recon.mapper=x"]) == 2
    assert "recon.mapper" in capsys.readouterr().err
    assert main(["reconstruct", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o"), "+recon.bogus=1"]) == 2
    assert "recon.bogus" in capsys.readouterr().err


TQDM_BAR = re.compile(r"\d+%\|")
GLOG_LINE = re.compile(r"^[IWEF]\d{8} ")


def _messages(err: str) -> list[str]:
    """stderr lines other than tqdm progress bars (which redraw with carriage returns)."""
    return [ln for ln in re.split(r"[\r\n]+", err) if ln.strip() and not TQDM_BAR.search(ln)]


def _listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_bad_output_paths_fail_before_decoding(oracle_clip, tmp_path, capsys):
    _, video, _ = oracle_clip
    (tmp_path / "some_file").write_text("x")
    for out, named, problem in ((tmp_path / "some_file" / "out", "some_file", "is a file, not a directory"),
                                (tmp_path / ("n" * 300), "nnnnnnnnnn", "the file system allows at most 255"),
                                (tmp_path / "some_file", "some_file", "exists and is not a directory")):
        t0 = time.perf_counter()
        assert main(["reconstruct", str(video), "-o", str(out)]) == 2
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1 and named in captured.err and problem in captured.err, captured.err
        assert "[decode]" not in captured.out and time.perf_counter() - t0 < 10.0
    assert _listing(tmp_path) == {"some_file": b"x"}


def _start_cli(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "inspatio_sim.cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _interrupt_during_sfm(proc: subprocess.Popen[str]) -> tuple[float, float, str]:
    """Follow the CLI's progress until COLMAP works in its child process and send SIGINT there. Return the seconds
    from SIGINT to the CLI's "interrupted" line (the run stopped and cleaned up), to its exit, and its stderr."""
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic(), ln) for ln in proc.stderr), daemon=True)
    reader.start()
    for line in proc.stdout:
        if "sfm: extracting" in line:
            break
    else:
        proc.wait(timeout=60)
        reader.join(timeout=10)
        pytest.fail(f"no structure-from-motion stage in the output: {''.join(ln for _, ln in lines)[-2000:]}")
    time.sleep(0.5)  # well inside the native feature extraction (several seconds on this clip)
    assert proc.poll() is None
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    exited = time.monotonic() - t0
    reader.join(timeout=10)
    acted = next((t - t0 for t, ln in lines if "interrupted" in ln), float("inf"))
    return acted, exited, "".join(ln for _, ln in lines)


def _colmap_children(marker: str) -> list[int]:
    """Processes still running COLMAP on a staging folder whose path contains ``marker``."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "colmap_job" in cmd and marker in cmd:
            pids.append(int(d.name))
    return pids


INTERRUPT_SECONDS = 3.0
"""Longest time from SIGINT to the CLI's "interrupted" line, with COLMAP's child stopped and the output cleaned up.
Measured with 2 cores at load 15-17: 0.6 s (it was ~40 s while the native call ran on). Python's own exit after that
(tearing down torch) took another 2.5-3 s at that load, hence the wider :data:`EXIT_SECONDS`."""
EXIT_SECONDS = 15.0


def test_ctrl_c_during_sfm_stops_at_once_and_removes_a_new_output_folder(oracle_clip, tmp_path):
    _, video, _ = oracle_clip
    out = tmp_path / "fresh" / "world"
    proc = _start_cli("reconstruct", str(video), "-o", str(out), *SCENE)
    acted, exited, err = _interrupt_during_sfm(proc)
    assert proc.returncode == 130
    assert _messages(err) == ["inspatio-sim: interrupted"]
    assert acted < INTERRUPT_SECONDS and exited < EXIT_SECONDS, f"stopped {acted:.1f} s, exit {exited:.1f} s"
    assert not (tmp_path / "fresh").exists()  # the folders it created are gone, partial .cache included
    assert _colmap_children(str(tmp_path)) == []


def test_ctrl_c_keeps_an_existing_output_folder_and_its_cache(reconstruction, tmp_path):
    _, _, _, out, _, video = reconstruction
    prev = tmp_path / "prev"
    shutil.copytree(out, prev)
    before = _listing(prev)
    assert any(k.endswith("result.npz") for k in before)  # a previous valid SfM cache
    proc = _start_cli("reconstruct", str(video), "-o", str(prev), "--force", *SCENE)
    acted, exited, err = _interrupt_during_sfm(proc)
    assert proc.returncode == 130 and _messages(err) == ["inspatio-sim: interrupted"]
    assert acted < INTERRUPT_SECONDS and exited < EXIT_SECONDS, f"stopped {acted:.1f} s, exit {exited:.1f} s"
    assert _listing(prev) == before
    assert _colmap_children(str(tmp_path)) == []


@pytest.fixture(scope="module")
def cut_clip(oracle_clip):
    """20 frames of the room, then (a cut) 28 frames of the courtyard along the same camera path."""
    gt, _, _ = oracle_clip
    with Oracle("courtyard", seed=0) as oracle:
        yard = oracle.render(gt.poses[20:48], np.zeros(28), gt.K, gt.width, gt.height, supersample=1).rgb
    return np.concatenate([gt.frames[:20], yard])


def test_scene_cut_is_refused_naming_the_segments(cut_clip, oracle_clip, tmp_path, capfd):
    frames = cut_clip
    _, _, cfg = oracle_clip
    with pytest.raises(ReconError, match="scene cut") as e:
        reconstruct(_write(tmp_path, frames), tmp_path / "out", cfg.recon, progress=False, verbose=True)
    msg = str(e.value)
    assert "frames 0-19 (0.00-1.90 s)" in msg and "frames 20-47 (2.00-4.70 s)" in msg, msg
    assert "recon.on_cut=longest" in msg
    assert not (tmp_path / "out").exists()
    # verbose (the CLI's -v): COLMAP's own log comes to the terminal (quiet otherwise, see the pure-rotation test)
    assert any(GLOG_LINE.match(ln) for ln in capfd.readouterr().err.splitlines())


def test_scene_cut_keeps_the_longest_segment_when_asked(cut_clip, tmp_path):
    r = run_sfm(cut_clip, None, SfMOptions(on_cut="longest"), tmp_path / "cache", progress=False)
    assert r.segments == [(0, 19), (20, 47)] and r.kept == (20, 47)
    assert r.registered.min() >= 20 and len(r.registered) >= 25  # the courtyard part, nearly all of it
    assert all("outside the kept segment frames 20-47" in r.dropped[i] for i in range(20))
    assert any("scene cut" in n for n in r.notes)
