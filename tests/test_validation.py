"""One check of poses and intrinsics for the whole package: every rule, the caller's error type, numpy and torch."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from inspatio_sim.conventions import intrinsics_matrix
from inspatio_sim.errors import ActionError, ConfigError, InSpatioError, ReconError, RenderError, SceneError
from inspatio_sim.validation import check_intrinsics, check_poses


def _poses(n: int = 3) -> np.ndarray:
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = Rotation.from_euler("zyx", np.random.default_rng(0).uniform(-3, 3, (n, 3))).as_matrix()
    T[:, :3, 3] = np.arange(3 * n).reshape(n, 3)
    return T


def _reflect(T):
    T[1, :3, 0] *= -1


POSE_RULES = [
    (lambda T: T[:, :3], None, r"must be \(B, 4, 4\)"),
    (lambda T: T[:2], 3, r"must be \(3, 4, 4\)"),
    (lambda T: T[:0], None, "B=0"),
    (lambda T: T.__setitem__((2, 0, 3), np.nan), None, "pose 2 is not finite"),
    (lambda T: T.__setitem__((1, 1, 1), np.inf), None, "pose 1 is not finite"),
    (lambda T: T.__setitem__((0, 3, 2), 0.5), None, "pose 0 is not rigid"),
    (lambda T: T.__setitem__((1, slice(0, 3), slice(0, 3)), 1.01 * T[1, :3, :3]), None, "pose 1 .*non-orthonormal"),
    (lambda T: T.__setitem__((2, 0, 1), T[2, 0, 1] + 1e-3), None, "pose 2 .*non-orthonormal"),
    (_reflect, None, r"pose 1 has det R = -1"),
]


@pytest.mark.parametrize(("mutate", "count", "message"), POSE_RULES)
@pytest.mark.parametrize("error", [SceneError, RenderError, ActionError, ConfigError, ReconError])
def test_each_pose_rule_raises_the_callers_error(mutate, count, message, error):
    T = _poses()
    out = mutate(T)
    T = T if out is None else out
    with pytest.raises(error, match=message) as info:
        check_poses(T, what="my poses", error=error, count=count)
    assert type(info.value) is error and str(info.value).startswith("my poses")


def test_valid_poses_pass_as_numpy_torch_and_lists():
    T = _poses(4)
    for given in (T, torch.as_tensor(T, dtype=torch.float32), T.tolist()):
        out = check_poses(given, error=RenderError, count=4)
        assert out.dtype == np.float64 and out.shape == (4, 4, 4)
        np.testing.assert_allclose(out, T, atol=1e-6)


def test_non_numeric_poses_are_one_clear_error():
    with pytest.raises(ConfigError, match="numeric"):
        check_poses([["a"]], error=ConfigError)


def test_rotation_tolerance_is_the_callers():
    T = _poses(1)
    T[0, :3, :3] *= 1 + 1e-5  # within the default 1e-4
    check_poses(T, error=SceneError)
    with pytest.raises(SceneError, match="non-orthonormal"):
        check_poses(T, error=SceneError, tol=1e-6)


K_RULES = [
    (lambda K: K[:2], r"must be \(3, 3\)"),
    (lambda K: K.__setitem__((0, 2), np.nan), "not finite"),
    (lambda K: K.__setitem__((0, 0), 0.0), "fx, fy > 0"),
    (lambda K: K.__setitem__((1, 1), -5.0), "fx, fy > 0"),
    (lambda K: K.__setitem__((0, 1), 0.3), "no skew"),
    (lambda K: K.__setitem__((2, 2), 2.0), r"\[0, 0, 1\]"),
]


@pytest.mark.parametrize(("mutate", "message"), K_RULES)
@pytest.mark.parametrize("error", [SceneError, RenderError, ConfigError, ReconError])
def test_each_intrinsics_rule_raises_the_callers_error(mutate, message, error):
    K = intrinsics_matrix(100.0, 90.0, 31.5, 23.5)
    out = mutate(K)
    K = K if out is None else out
    with pytest.raises(error, match=message) as info:
        check_intrinsics(K, what="my K", error=error)
    assert type(info.value) is error and str(info.value).startswith("my K")


def test_per_camera_intrinsics_only_where_the_caller_allows_them():
    K = intrinsics_matrix(100.0, 90.0, 31.5, 23.5)
    Kb = np.stack([K, K])
    assert check_intrinsics(Kb, error=RenderError, batch=2).shape == (2, 3, 3)
    with pytest.raises(RenderError, match=r"\(3, 3\) or \(3, 3, 3\)"):
        check_intrinsics(Kb, error=RenderError, batch=3)
    with pytest.raises(SceneError, match=r"must be \(3, 3\)"):
        check_intrinsics(Kb, error=SceneError)
    Kb[1, 0, 0] = 0.0
    with pytest.raises(RenderError, match="fx, fy > 0"):
        check_intrinsics(torch.as_tensor(Kb), error=RenderError, batch=2)


def test_every_public_entry_point_uses_its_own_error_type():
    """The modules that take poses answer a bad one with their own InSpatioError (none is a bare ValueError)."""
    from inspatio_sim.recon.mvs import MVSConfig, estimate_depth
    from inspatio_sim.render.splat import render
    from inspatio_sim.world.splats import SplatCloud

    T = _poses(2)
    T[1, :3, :3] *= 2.0
    K = intrinsics_matrix(20.0, 20.0, 7.5, 7.5)
    with pytest.raises(RenderError, match="non-orthonormal"):
        render(SplatCloud.empty(), T, K, 16, 16)
    with pytest.raises(ReconError, match="non-orthonormal"):
        estimate_depth(np.zeros((2, 16, 16, 3), np.uint8), K, T, None, MVSConfig(), progress=False)
    assert issubclass(ReconError, InSpatioError)
