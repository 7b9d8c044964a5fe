"""The renderer runs the same code on CUDA; results match the CPU up to float summation order."""

import numpy as np
import pytest
import torch

from inspatio_sim.render import render_world
from inspatio_sim.world import build_world
from tests.helpers import wall_scene

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def test_cuda_render_matches_cpu():
    scene = wall_scene(n=3)
    cpu = build_world(scene, device="cpu")
    gpu = build_world(scene, device="cuda")
    a = render_world(cpu, scene.poses, scene.timestamps, scene.K, scene.height, scene.width)
    b = render_world(gpu, torch.as_tensor(scene.poses, device="cuda"), scene.timestamps, scene.K, scene.height,
                     scene.width)
    assert b.rgb.device.type == "cuda" and b.depth.device.type == "cuda"
    assert torch.equal(a.valid, b.valid.cpu())
    assert np.abs(a.rgb.numpy().astype(int) - b.rgb.cpu().numpy().astype(int)).max() <= 1
    np.testing.assert_allclose(a.depth.numpy(), b.depth.cpu().numpy(), rtol=1e-5)
