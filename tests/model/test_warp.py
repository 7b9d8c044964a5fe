"""Depth filling and cross-camera lookups of the model step."""

import numpy as np
import torch

from inspatio_sim.conventions import intrinsics_from_fov
from inspatio_sim.metrics import psnr
from inspatio_sim.model.warp import depth_hypotheses, fill_depth, lift, lookup, reproject
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
    near = fill_depth(depth, known, "near")
    assert torch.all(near[~known] == 2.0) and torch.equal(near[known], depth[known])  # the occluder continued
    # the classical completer's three hypotheses in one call are the three fills
    both = depth_hypotheses(depth, known)
    for i, mode in enumerate(("smooth", "far", "near")):
        assert torch.equal(both[i], fill_depth(depth, known, mode))


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


def test_reproject_shifts_a_plane_by_the_camera_motion_and_masks_what_the_previous_camera_missed():
    h, w, f, d, dx = 12, 16, 10.0, 2.0, 0.4
    K = torch.tensor([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    u = torch.arange(w, dtype=torch.float32)
    prev = (u[None, None, :, None] * torch.tensor([1.0, 2.0, -1.0])).expand(1, h, w, 3).contiguous()
    depth = torch.full((1, h, w), d)
    same, seen = reproject(prev, depth, depth, torch.eye(4)[None], torch.eye(4)[None], K)
    assert seen.all() and torch.allclose(same, prev, atol=1e-5)  # the same camera: the frame itself
    pose = torch.eye(4)[None].clone()
    pose[0, 0, 3] = dx  # 0.4 m to the right: a point at u was at u + f dx / d = u + 2 px in the previous frame
    warped, seen = reproject(prev, depth, depth, pose, torch.eye(4)[None], K)
    shift = int(f * dx / d)
    assert seen[..., : w - shift].all() and not seen[..., w - shift:].any()  # beyond its right edge: unseen
    assert torch.allclose(warped[:, :, : w - shift], prev[:, :, shift:], atol=1e-4)
    nearer = torch.full((1, h, w), 1.0)  # something in front of the plane at the previous step: hidden there
    assert not reproject(prev, nearer, depth, pose, torch.eye(4)[None], K)[1].any()
    assert not reproject(prev, depth, torch.zeros_like(depth), pose, torch.eye(4)[None], K)[1].any()
