"""``inspatio-sim reconstruct-many`` on a real two-node loopback Ray cluster: three clips (one broken) -> two worlds
and one clear failure, ``index.json``; a rerun skips the finished worlds. Plus the input expansion rules."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from inspatio_sim.cli import main
from inspatio_sim.cluster.reconstruct_many import Progress, expand_inputs, world_name
from inspatio_sim.config import compose
from inspatio_sim.errors import ConfigError
from inspatio_sim.scene import Scene
from inspatio_sim.scene_source import load_scene
from inspatio_sim.video_io import write_video

FAST = ["recon.stride=2", "recon.camera_height=1.4", "recon.mvs.num_planes=24", "recon.dynamic.gaps=[1]",
        "recon.max_features=1024", "recon.overlap=5", "recon.mapper=incremental", "cluster.cpus_per_clip=1"]
"""The room's 60-frame path at 240x180, every second frame, with a lighter dense stage (about 30 CPU-seconds a
clip; at 160x120, or with every third frame, structure-from-motion or the World's extent gets fragile)."""


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    gt = load_scene(compose(["scene.oracle.width=240", "scene.oracle.height=180"]).scene)
    write_video(gt.frames, folder / "room_a.mp4", gt.meta.fps)
    write_video(gt.frames[::-1], folder / "room_b.mp4", gt.meta.fps)  # the path walked backwards
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 20)
    return folder


def test_three_clips_two_worlds_one_failure_then_resume(ray_cluster, clips, tmp_path, capsys):
    out = tmp_path / "worlds"
    argv = ["reconstruct-many", str(clips), "-o", str(out), "--address", ray_cluster.address, *FAST]
    assert main(argv) == 1  # a clip failed: exit status 1, the others finished
    text = capsys.readouterr().out
    assert "FAILED broken:" in text and "clips/h" in text and "2 world(s), 1 failed" in text
    index = json.loads((out / "index.json").read_text())
    assert [w["name"] for w in index["worlds"]] == ["room_a", "room_b"]
    assert [f["name"] for f in index["failed"]] == ["broken"] and index["failed"][0]["reason"]
    assert index["failed"][0]["reason"] in text  # the reason, as printed
    assert not (out / "broken").exists()  # a failed clip leaves nothing behind
    for w in index["worlds"]:
        assert w["train_view_psnr"] > 15 and w["registered_frames"] >= 25
        assert Scene.load(out / w["path"]).num_frames == w["registered_frames"]
    mtimes = {w["name"]: (out / w["path"] / "scene.npz").stat().st_mtime_ns for w in index["worlds"]}

    assert main(argv) == 1  # rerun: the finished worlds are skipped, the broken clip is tried again
    text = capsys.readouterr().out
    assert "1 clip(s) to reconstruct (2 finished before)" in text and "FAILED broken:" in text
    again = json.loads((out / "index.json").read_text())
    assert [w["name"] for w in again["worlds"]] == ["room_a", "room_b"]
    assert {w["name"]: (out / w["path"] / "scene.npz").stat().st_mtime_ns for w in again["worlds"]} == mtimes

    # everything finished: nothing to do, Ray is not even needed
    assert main(["reconstruct-many", str(clips / "room_a.mp4"), "-o", str(out), *FAST]) == 0
    assert "2 world(s), 0 failed" in capsys.readouterr().out  # the index lists every world in the folder
    assert [w["name"] for w in json.loads((out / "index.json").read_text())["worlds"]] == ["room_a", "room_b"]


def test_inputs_folders_globs_lists_and_clear_errors(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "b.avi").write_bytes(b"x")
    (tmp_path / "notes.md").write_text("x")
    frames = tmp_path / "stills"
    frames.mkdir()
    (frames / "0001.png").write_bytes(b"x")
    assert [p.name for p in expand_inputs([str(tmp_path)])] == ["a.mp4", "b.avi", "stills"]
    assert [p.name for p in expand_inputs([str(tmp_path / "*.mp4")])] == ["a.mp4"]
    listing = tmp_path / "list.txt"
    listing.write_text("# clips\nb.avi\n\na.mp4  # the first\nb.avi\n")
    assert [p.name for p in expand_inputs([str(listing)])] == ["b.avi", "a.mp4"]  # duplicates removed
    assert world_name(tmp_path / "a.mp4") == "a" and world_name(frames) == "stills"
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.mov").write_bytes(b"x")
    with pytest.raises(ConfigError, match="same world 'a'"):
        expand_inputs([str(tmp_path / "a.mp4"), str(other / "a.mov")])
    with pytest.raises(ConfigError, match="does not exist"):
        expand_inputs([str(tmp_path / "missing.mp4")])
    with pytest.raises(ConfigError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.mkv")])
    assert expand_inputs([str(frames)]) == [frames.resolve()]  # a folder of images is one clip
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no video"):
        expand_inputs([str(tmp_path / "empty")])


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert main(["reconstruct-many", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    assert not Path(tmp_path / "w").exists()


def test_progress_line_prints_changes_only_in_a_log():
    stream = io.StringIO()
    progress = Progress(total=3, skipped=1, stream=stream)
    progress.show(running=2, queued=0)
    progress.show(running=2, queued=0)  # nothing changed: no new line in a log file
    progress.done += 1
    progress.show(running=1, queued=0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("reconstruct-many: 1/3 done (1 skipped), 2 running, 0 queued, 0 failed, -- clips/h")
    assert lines[1].startswith("reconstruct-many: 2/3 done (1 skipped), 1 running, 0 queued, 0 failed,")
    assert "clips/h" in lines[1] and "-- clips/h" not in lines[1]
