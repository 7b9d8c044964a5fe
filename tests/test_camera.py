"""Pinhole projection written once: round trips, the pixel-centre convention, batched K, numpy and torch alike."""

import numpy as np
import torch

from inspatio_sim.camera import backproject, pixel_rays, project_points
from inspatio_sim.conventions import intrinsics_matrix

K = intrinsics_matrix(100.0, 80.0, 31.5, 23.5)


def test_a_point_lands_where_the_convention_says():
    u, v, z = project_points(np.array([[0.2, -0.1, 2.0]]), K)
    assert np.allclose([u[0], v[0], z[0]], [100 * 0.1 + 31.5, 80 * -0.05 + 23.5, 2.0])
    u, v, _ = project_points(np.array([0.0, 0.0, 5.0]), K)  # the optical axis hits the principal point
    assert (float(u), float(v)) == (31.5, 23.5)


def test_backproject_inverts_project_in_numpy_and_torch():
    rng = np.random.default_rng(0)
    pts = rng.uniform([-2, -2, 0.5], [2, 2, 6], (5, 7, 3))
    u, v, z = project_points(pts, K)
    np.testing.assert_allclose(backproject(u, v, K, z), pts, rtol=1e-12)
    pts_t, K_t = torch.as_tensor(pts), torch.as_tensor(K)
    ut, vt, zt = project_points(pts_t, K_t)
    assert isinstance(ut, torch.Tensor)
    np.testing.assert_array_equal(ut.numpy(), u)  # same arithmetic: bit-identical
    np.testing.assert_allclose(backproject(ut, vt, K_t, zt).numpy(), pts, rtol=1e-12)


def test_points_behind_the_camera_stay_finite_and_far_off_image():
    u, _, z = project_points(torch.tensor([[0.1, 0.1, -1.0], [0.1, 0.1, 0.0]]), torch.as_tensor(K))
    assert torch.isfinite(u).all() and (u > 1e4).all() and (z <= 0).all()
    with np.errstate(divide="ignore"):
        u, _, _ = project_points(np.array([[0.1, 0.1, 0.0]]), K, min_depth=None)
    assert np.isinf(u).all()


def test_per_camera_intrinsics_broadcast_over_the_batch():
    K2 = np.stack([K, intrinsics_matrix(50.0, 50.0, 10.0, 10.0)])
    pts = np.tile(np.array([0.5, 0.25, 1.0]), (2, 4, 1))
    u, v, _ = project_points(pts, K2)
    assert u.shape == (2, 4)
    assert np.allclose(u[0], 100 * 0.5 + 31.5) and np.allclose(u[1], 50 * 0.5 + 10.0)
    assert np.allclose(v[1], 50 * 0.25 + 10.0)
    rays = backproject(u, v, K2)
    np.testing.assert_allclose(rays, pts)


def test_pixel_rays_pass_through_pixel_centres():
    rays = pixel_rays(torch.as_tensor(K, dtype=torch.float32), 48, 64)
    assert rays.shape == (48, 64, 3) and (rays[..., 2] == 1).all()
    u, v, _ = project_points(rays, torch.as_tensor(K, dtype=torch.float32))
    ref_v, ref_u = torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="ij")
    assert torch.allclose(u, ref_u, atol=1e-4) and torch.allclose(v, ref_v, atol=1e-4)
    assert pixel_rays(torch.as_tensor(K), 48, 64, stride=4).shape == (12, 16, 3)
