"""Depth filling and cross-camera lookups of the model step."""

import numpy as np
import torch

from inspatio_sim.conventions import intrinsics_from_fov
from inspatio_sim.metrics import psnr
from inspatio_sim.model.warp import fill_depth, lift, lookup
from tests.model.scenes import camera, view

H, W = 48, 64


def test_smooth_fill_spans_a_plane_across_a_hole():
    K = intrinsics_from_fov(W, H, 70.0)
    _, depth = view(camera(0.0, 0.0, yaw_deg=35.0), K, H, W)  # the wall at a slant: depth varies across the image
    known = depth > 0
    known[15:30, 20:40] = False
    filled = fill_depth(depth[None], known[None], "smooth")[0]
    hole = ~known & (depth > 0)
    rel = ((filled - depth).abs() / depth)[hole]
    assert rel.max() < 0.05 and rel.mean() < 0.02, (rel.max(), rel.mean())
    assert torch.equal(filled[known], depth[known])  # known depth is never changed


def test_far_fill_takes_the_background_of_a_disocclusion():
    depth = torch.full((1, 32, 32), 5.0)
    depth[:, :, :16] = 2.0  # an occluder on the left, the background on the right
    known = torch.ones_like(depth, dtype=torch.bool)
    known[:, 8:24, 16:22] = False  # a disocclusion: background pixels next to the occluder's edge
    far = fill_depth(depth, known, "far")
    smooth = fill_depth(depth, known, "smooth")
    assert torch.all(far[~known] == 5.0)
    assert smooth[~known].min() < 4.0  # the smooth surface would bend towards the occluder
    # with nothing known at all, nothing is invented
    assert torch.all(fill_depth(depth, torch.zeros_like(known), "far") == 0)


def test_lookup_returns_the_other_cameras_colour_and_depth_of_each_point():
    K = intrinsics_from_fov(W, H, 70.0)
    target, source = camera(0.0, 0.0), camera(0.5, 0.4, yaw_deg=-8.0)
    _, depth_t = view(target, K, H, W)
    rgb_s, depth_s = view(source, K, H, W)
    Kt = torch.as_tensor(K, dtype=torch.float32)
    points = lift(depth_t[None], torch.as_tensor(target, dtype=torch.float32)[None], Kt)[0].reshape(-1, 3)
    batch = torch.zeros(points.shape[0], dtype=torch.long)
    found = lookup(points, batch, torch.as_tensor(target[:3, 3], dtype=torch.float32)[None], rgb_s[None],
                   depth_s[None], torch.zeros((1, 1), dtype=torch.long),
                   torch.as_tensor(source, dtype=torch.float32)[None, None], Kt)
    inside = found.inside[:, 0]
    assert 0.5 < inside.float().mean() < 1.0  # the source sees part of the target's view, not all of it
    # the source's depth at each projection equals the point's depth in the source camera (same surface)
    assert torch.allclose(found.depth[:, 0][inside], found.z[:, 0][inside], rtol=0.02)
    truth, _ = view(target, K, H, W)
    ok = inside.numpy()
    colour = found.rgb[:, 0].round().clamp(0, 255).byte().numpy()
    assert psnr(colour[ok], truth.numpy().reshape(-1, 3)[ok]) > 30
    assert np.all(found.cos[:, 0][inside].numpy() > 0.9)
