import json
import os

import numpy as np
import pytest

from inspatio_sim.errors import SceneError
from inspatio_sim.scene import SCENE_FORMAT_VERSION, Scene, scene_file
from tests.helpers import wall_scene


def test_round_trip_is_exact(tmp_path):
    s = wall_scene(n=4)
    s.meta.extra = {"preset": "x", "nested": [1, 2]}
    path = s.save(tmp_path / "w")
    assert path == tmp_path / "w" / "scene.npz"
    back = Scene.load(tmp_path / "w")
    for key in ("frames", "timestamps", "K", "poses", "depth", "confidence", "dynamic_mask"):
        a, b = getattr(s, key), getattr(back, key)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert back.meta == s.meta
    assert back.num_frames == 4 and back.height == 48 and back.width == 64
    # a .npz path is used as is
    assert s.save(tmp_path / "x.npz") == tmp_path / "x.npz"
    assert Scene.load(tmp_path / "x.npz").num_frames == 4


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    s = wall_scene()
    s.save(tmp_path)
    before = (tmp_path / "scene.npz").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    s2 = wall_scene(n=2)
    with pytest.raises(OSError):
        s2.save(tmp_path)
    assert (tmp_path / "scene.npz").read_bytes() == before  # old scene intact
    assert sorted(os.listdir(tmp_path)) == ["scene.npz"]  # no temp left behind


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: setattr(s, "frames", s.frames[..., :2]), "frames must be"),
        (lambda s: setattr(s, "frames", s.frames.astype(np.float32)), "uint8"),
        (lambda s: setattr(s, "depth", s.depth[:, :10]), "depth must have shape"),
        (lambda s: setattr(s, "timestamps", s.timestamps[::-1].copy()), "strictly increasing"),
        (lambda s: s.poses.__setitem__((1, 0, 3), np.nan), "pose 1 is not finite"),
        (lambda s: s.poses.__setitem__((2, 0, 0), 1.1), "non-orthonormal"),
        (lambda s: s.poses.__setitem__((0, 3, 0), 0.5), "not rigid"),
        (lambda s: s.poses.__setitem__((0, slice(0, 3), 0), -s.poses[0, :3, 0]), "det R = -1"),  # reflection
        (lambda s: s.depth.__setitem__((0, 0, 0), -1.0), "negative"),
        (lambda s: s.depth.__setitem__((0, 0, 0), np.inf), "NaN or inf"),
        (lambda s: s.confidence.__setitem__((0, 0, 0), 2.0), "confidence"),
        (lambda s: setattr(s, "dynamic_mask", s.dynamic_mask.astype(np.uint8)), "dynamic_mask must be bool"),
        (lambda s: s.K.__setitem__((0, 0), 0.0), "fx, fy > 0"),
        (lambda s: setattr(s, "frames", s.frames[:0]), "at least one"),
    ],
)
def test_validation_names_the_problem(mutate, message):
    s = wall_scene()
    mutate(s)
    with pytest.raises(SceneError, match=message):
        s.validate()


def test_invalid_scene_is_never_written(tmp_path):
    s = wall_scene()
    s.poses[0, 0, 3] = np.nan
    with pytest.raises(SceneError):
        s.save(tmp_path)
    assert not scene_file(tmp_path).exists()


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(SceneError, match="no Scene at"):
        Scene.load(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "scene.npz").write_bytes(b"not a zip at all")
    with pytest.raises(SceneError, match="corrupt"):
        Scene.load(tmp_path / "bad")
    # version mismatch
    s = wall_scene()
    path = s.save(tmp_path / "v")
    with np.load(path) as d:
        arrays = {k: d[k] for k in d.files}
    meta = json.loads(str(arrays["meta"]))
    meta["version"] = SCENE_FORMAT_VERSION + 1
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with pytest.raises(SceneError, match="format version"):
        Scene.load(path)
    # missing key
    del arrays["depth"]
    arrays["meta"] = np.array(json.dumps({**meta, "version": SCENE_FORMAT_VERSION}))
    np.savez(path, **arrays)
    with pytest.raises(SceneError, match="lacks depth"):
        Scene.load(path)
    # truncated file
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(SceneError):
        Scene.load(path)


def test_subset_keeps_frames_in_order():
    s = wall_scene(n=4)
    sub = s.subset([0, 2])
    np.testing.assert_array_equal(sub.frames, s.frames[[0, 2]])
    with pytest.raises(SceneError, match="increasing"):
        s.subset([2, 0])
