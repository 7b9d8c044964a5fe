"""Atomic writes: complete or absent, never a temporary left behind."""

import json
import os

import numpy as np
import pytest

from inspatio_sim.fileio import atomic_write, write_json, write_text
from inspatio_sim.video_io import write_video


def test_a_file_appears_complete_with_its_name_and_nothing_else(tmp_path):
    target = tmp_path / "sub" / "out.npz"
    with atomic_write(target) as tmp:
        assert tmp.name == "out.npz" and tmp.parent.parent == target.parent  # same suffix, same file system
        assert not target.exists()
        np.savez(tmp, a=np.arange(3))
    np.testing.assert_array_equal(np.load(target)["a"], [0, 1, 2])
    assert os.listdir(target.parent) == ["out.npz"]


def test_an_exception_inside_leaves_no_file_and_no_temp(tmp_path):
    target = tmp_path / "report.json"
    with pytest.raises(RuntimeError, match="boom"), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_an_exception_leaves_the_old_file_intact(tmp_path):
    target = write_text(tmp_path / "a.txt", "old\n")
    with pytest.raises(KeyboardInterrupt), atomic_write(target) as tmp:
        tmp.write_text("new, half written")
        raise KeyboardInterrupt
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["a.txt"]
    write_text(target, "new\n")  # a successful write replaces it
    assert target.read_text() == "new\n" and os.listdir(tmp_path) == ["a.txt"]


def test_a_directory_is_moved_into_place_whole(tmp_path):
    target = tmp_path / "bag"
    with atomic_write(target) as tmp:
        tmp.mkdir()
        (tmp / "part.mcap").write_bytes(b"x")
    assert (target / "part.mcap").read_bytes() == b"x"
    assert os.listdir(tmp_path) == ["bag"]


def test_writing_nothing_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"), atomic_write(tmp_path / "x.bin"):
        pass
    assert os.listdir(tmp_path) == []


def test_write_json_round_trips(tmp_path):
    path = write_json(tmp_path / "m.json", {"a": [1, 2.5], "b": None})
    assert json.loads(path.read_text()) == {"a": [1, 2.5], "b": None}
    assert path.read_text().endswith("\n")


def test_a_failing_video_leaves_nothing(tmp_path):
    def frames():
        yield np.zeros((16, 16, 3), np.uint8)
        raise RuntimeError("decoder died")

    with pytest.raises(RuntimeError, match="decoder died"):
        write_video(frames(), tmp_path / "v.mp4", 10.0)
    assert os.listdir(tmp_path) == []
    write_video([np.zeros((16, 16, 3), np.uint8)] * 3, tmp_path / "v.mp4", 10.0)
    assert os.listdir(tmp_path) == ["v.mp4"] and (tmp_path / "v.mp4").stat().st_size > 0
