"""Output paths are checked before any work: one line naming the path and the problem, nothing created."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from inspatio_sim.errors import OutputPathError
from inspatio_sim.paths import check_output_path


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_good_paths_pass_and_nothing_is_created(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "scene.npz").write_bytes(b"x")
    before = _listing(tmp_path)
    assert check_output_path(tmp_path / "old", "dir") == tmp_path / "old"  # an existing folder is reused
    assert check_output_path(tmp_path / "new" / "deeper" / "out", "dir") == tmp_path / "new" / "deeper" / "out"
    assert check_output_path(tmp_path / "scene.npz", "file") == tmp_path / "scene.npz"  # overwritten later
    assert check_output_path(str(tmp_path / "a" / "clip.mp4"), "file") == tmp_path / "a" / "clip.mp4"
    assert _listing(tmp_path) == before  # the write probe leaves nothing behind


@pytest.mark.parametrize(("make", "rel", "kind", "message"), [
    ("file", "some_file/out", "dir", "'{root}/some_file' is a file, not a directory"),
    ("file", "some_file/a/b/out", "dir", "'{root}/some_file' is a file, not a directory"),
    ("file", "some_file/clip.mp4", "file", "'{root}/some_file' is a file, not a directory"),
    ("file", "some_file", "dir", "exists and is not a directory"),
    ("dir", "some_file", "file", "is a directory"),
    (None, "x" * 300 + "/out", "dir", "is 300 bytes long, the file system allows at most 255"),
    (None, "out/" + "y" * 256, "dir", "is 256 bytes long"),
    (None, "out/" + "/".join(["z" * 200] * 25), "file", "the full path is"),
    (None, "", "dir", "path is empty"),
])
def test_bad_paths_are_named_in_one_line(tmp_path, make, rel, kind, message):
    if make == "file":
        (tmp_path / "some_file").write_text("not a folder")
    elif make == "dir":
        (tmp_path / "some_file").mkdir()
    before = _listing(tmp_path)
    path = str(tmp_path / rel) if rel else ""
    with pytest.raises(OutputPathError) as e:
        check_output_path(path, kind, what="output")
    text = str(e.value)
    assert message.format(root=tmp_path) in text and "\n" not in text
    assert text.startswith("output ")
    assert _listing(tmp_path) == before


def test_broken_symlink_is_refused(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(OutputPathError, match="broken symbolic link"):
        check_output_path(tmp_path / "link", "dir")


def test_unwritable_folder_is_refused(tmp_path):
    if os.geteuid() == 0:  # root writes through file modes: use a mount that refuses everyone (Linux sysfs)
        target, folder = Path("/sys/inspatio-sim-out"), "/sys"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target, folder = locked / "out", str(locked)
    try:
        with pytest.raises(OutputPathError, match="no permission to create entries in " + re.escape(f"'{folder}'")):
            check_output_path(target, "dir", what="--out")
        with pytest.raises(OutputPathError, match=r"^--out "):
            check_output_path(target / "bench.json", "file", what="--out")
    finally:
        if os.geteuid() != 0:
            (tmp_path / "locked").chmod(0o700)


def test_cli_commands_check_their_output_paths_first(tmp_path, capsys):
    from inspatio_sim.cli import main

    (tmp_path / "some_file").write_text("x")
    bad = str(tmp_path / "some_file" / "out")
    for argv, what in ((["oracle", "scene=tiny", "-o", bad], "-o"),
                       (["oracle", "scene=tiny", "--video", bad + ".mp4"], "--video"),
                       (["bench", "render", "--quick", "--out", bad], "--out")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"error: {what} '{bad}" in err and "is a file, not a directory" in err, err
    assert _listing(tmp_path) == ["some_file"]
