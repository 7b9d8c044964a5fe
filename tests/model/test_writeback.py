"""Write-back: completed content comes back on a revisit, stays with its agent, is bounded, and never becomes
geometry."""

import numpy as np
import pytest
import torch

from inspatio_sim.conventions import intrinsics_from_fov
from inspatio_sim.errors import ConfigError
from inspatio_sim.model.warp import lift
from inspatio_sim.model.writeback import GeneratedPool, WritebackConfig
from inspatio_sim.render import RenderConfig
from tests.model.scenes import camera, view

H, W = 48, 64
K = intrinsics_from_fov(W, H, 70.0)
KT = torch.as_tensor(K, dtype=torch.float32)
POSE = camera(0.0, 0.0, yaw_deg=10.0)


def _written(pool, agent, pose=POSE):
    rgb, depth = view(pose, K, H, W)
    pts = lift(depth[None], torch.as_tensor(pose, dtype=torch.float32)[None], KT)[0]
    keep = depth > 0
    pool.write(agent, pts[keep], rgb[keep], spacing=float(depth[keep].median()) / K[0, 0])
    return rgb, keep


def _poses(n, pose=POSE):
    return torch.as_tensor(np.stack([pose] * n), dtype=torch.float32)


def test_a_written_view_renders_back_identically_at_the_same_pose():
    pool = GeneratedPool(2, WritebackConfig(max_points_per_agent=H * W), 64, torch.device("cpu"))
    rgb, keep = _written(pool, 0)
    out = pool.render(_poses(2), KT, H, W, RenderConfig())
    assert out is not None
    assert out.valid[0][keep].all() and torch.equal(out.rgb[0][keep], rgb[keep])
    assert not out.valid[1].any()  # per_agent: the other agent sees nothing of it


def test_shared_scope_shows_every_write_to_every_agent():
    pool = GeneratedPool(2, WritebackConfig(scope="shared", max_points_per_agent=H * W), 64, torch.device("cpu"))
    rgb, keep = _written(pool, 0)
    out = pool.render(_poses(2), KT, H, W, RenderConfig())
    assert torch.equal(out.rgb[1][keep], rgb[keep])


def test_the_pool_is_bounded_evicts_oldest_first_and_reset_clears_one_agent():
    pool = GeneratedPool(2, WritebackConfig(max_points_per_agent=1000), 64, torch.device("cpu"))
    assert pool.blocks_per_agent == 16
    before = pool.xyz.numel()
    for y in np.linspace(-1, 1, 9):  # nine views of about 3,000 points each
        _written(pool, 0, camera(0.0, float(y)))
        _written(pool, 1, camera(0.0, float(y)))
    assert (pool.num_points <= 16 * 64).all() and (pool.num_points > 900).all()
    assert pool.xyz.numel() == before  # memory fixed at construction
    # the newest write is what the pool holds: the last view renders back, the first one is gone
    last = pool.render(_poses(2, camera(0.0, 1.0)), KT, H, W, RenderConfig())
    assert last.valid[0].float().mean() > 0.2
    pool.reset(torch.tensor([True, False]))
    assert pool.num_points[0] == 0 and pool.num_points[1] > 900
    out = pool.render(_poses(2, camera(0.0, 1.0)), KT, H, W, RenderConfig())
    assert not out.valid[0].any() and out.valid[1].any()


def test_bad_writeback_settings_are_refused():
    with pytest.raises(ConfigError, match="scope"):
        WritebackConfig(scope="everyone").validate()
    with pytest.raises(ConfigError, match="max_points_per_agent"):
        WritebackConfig(max_points_per_agent=0).validate()
