import numpy as np
import pytest

from inspatio_sim.errors import WorldError
from inspatio_sim.ground import fit_ground_plane


def test_finds_tilted_floor_among_walls_and_noise():
    rng = np.random.default_rng(1)
    n_true = np.array([0.05, -0.03, 1.0])
    n_true /= np.linalg.norm(n_true)
    xy = rng.uniform(-3, 3, size=(5000, 2))
    floor = np.c_[xy, -(n_true[0] * xy[:, 0] + n_true[1] * xy[:, 1] - 0.2) / n_true[2]]  # n.p = 0.2
    floor += rng.normal(0, 0.003, floor.shape)
    wall = np.c_[np.full(4000, 3.0), rng.uniform(-3, 3, 4000), rng.uniform(0, 2.5, 4000)]
    table = np.c_[rng.uniform(-0.5, 0.5, (1500, 2)), np.full(1500, 0.9)]
    plane = fit_ground_plane(np.r_[floor, wall, table], np.random.default_rng(0))
    assert np.degrees(np.arccos(plane.normal @ n_true)) < 0.5
    assert plane.offset == pytest.approx(-0.2, abs=0.01)
    assert np.abs(plane.height(floor)).max() < 0.02
    assert plane.height(np.array([0.0, 0.0, 2.0])) > 1.5


def test_no_horizontal_plane():
    rng = np.random.default_rng(0)
    wall = np.c_[np.full(1000, 3.0), rng.uniform(-3, 3, 1000), rng.uniform(0, 2.5, 1000)]
    with pytest.raises(WorldError, match="ground"):
        fit_ground_plane(wall, rng)
    with pytest.raises(WorldError):
        fit_ground_plane(np.zeros((2, 3)), rng)


def test_z_at_lies_on_the_plane_for_floats_arrays_and_tensors():
    import torch

    from inspatio_sim.ground import GroundPlane

    n = np.array([0.1, -0.2, 1.0])
    plane = GroundPlane(normal=n / np.linalg.norm(n), offset=0.3, inlier_fraction=1.0)
    xy = np.array([[0.0, 0.0], [2.0, -1.0], [-3.0, 4.0]])
    z = plane.z_at(xy[:, 0], xy[:, 1])
    assert z.shape == (3,)
    np.testing.assert_allclose(plane.height(np.c_[xy, z]), 0.0, atol=1e-12)  # on the plane
    assert plane.z_at(0.0, 0.0) == pytest.approx(-0.3 / plane.normal[2])
    assert plane.z_at(2.0, -1.0) == pytest.approx(z[1])
    t = plane.z_at(torch.tensor(xy[:, 0], dtype=torch.float32), torch.tensor(xy[:, 1], dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), z, atol=1e-5)
