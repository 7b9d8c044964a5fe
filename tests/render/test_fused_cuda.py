"""The fused CUDA kernels against the torch path.

On a machine with CUDA: the real kernels (``make gpu-check``). Everywhere: the same kernels under numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``, in a subprocess: the switch is read when numba.cuda is first imported) on a
tiny scene: this checks the kernels' logic and indexing, not their speed or the GPU's float behaviour.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inspatio_sim.conventions import intrinsics_from_fov
from inspatio_sim.metrics import psnr
from inspatio_sim.render import RenderConfig, render_world
from inspatio_sim.world import build_world
from tests.helpers import wall_scene

ROOT = Path(__file__).resolve().parents[2]

_SIM_SCRIPT = """
import dataclasses, numpy as np, torch
from inspatio_sim.render import RenderConfig, render_world, fused, fused_cuda
from inspatio_sim.world import build_world
from inspatio_sim.conventions import intrinsics_from_fov
from tests.helpers import wall_scene
fused.render_fused = fused_cuda.render_fused_cuda  # CPU tensors, simulated CUDA kernels
scene = wall_scene(n=2, h=12, w=16)
world = build_world(scene)
poses = scene.poses.copy()
poses[1, :3, 3] += [0.4, 0.3, 0.0]  # a novel view: holes, fill and push-pull
K = intrinsics_from_fov(16, 12, 90.0)
for cfg in (RenderConfig(), RenderConfig(depth_tolerance=0.0, fill_radius=0, fill_holes=False),
            RenderConfig(fill_radius=2)):
    a = render_world(world, poses, scene.timestamps, K, 12, 16, dataclasses.replace(cfg, backend="torch"))
    b = render_world(world, poses, scene.timestamps, K, 12, 16, dataclasses.replace(cfg, backend="fused"))
    assert torch.equal(a.valid, b.valid), "valid"
    assert torch.equal(a.depth, b.depth), "depth"
    d = (a.rgb.int() - b.rgb.int()).abs().max().item()
    assert d <= 1, d
print("SIM_OK")
"""


def test_cuda_kernels_under_the_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _SIM_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and "SIM_OK" in out.stdout, out.stderr[-3000:]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_fused_matches_torch_path():
    scene = wall_scene(n=3)
    gpu = build_world(scene, device="cuda")
    rng = np.random.default_rng(0)
    poses = torch.as_tensor(scene.poses, device="cuda", dtype=torch.float32)
    poses[:, :3, 3] += torch.as_tensor(rng.normal(size=(3, 3)) * 0.3, device="cuda", dtype=torch.float32)
    for h, w in ((48, 64), (1, 1), (5, 7), (480, 640)):
        K = intrinsics_from_fov(w, h, 70.0)
        a = render_world(gpu, poses, scene.timestamps, K, h, w, RenderConfig(backend="torch"))
        b = render_world(gpu, poses, scene.timestamps, K, h, w, RenderConfig(backend="fused"))
        assert b.rgb.device.type == "cuda"
        assert torch.equal(a.valid, b.valid)
        torch.testing.assert_close(a.depth, b.depth, rtol=1e-5, atol=0.0)
        assert psnr(a.rgb.cpu().numpy().reshape(-1, w, 3), b.rgb.cpu().numpy().reshape(-1, w, 3)) >= 60.0


def test_kernel_failure_falls_back_under_auto_and_is_one_error_under_fused(monkeypatch):
    from inspatio_sim.errors import RenderError
    from inspatio_sim.render import fused_cuda

    def broken(*args):
        raise RuntimeError("libNVVM cannot be found")

    monkeypatch.setattr(fused_cuda, "_failed", [])
    monkeypatch.setattr(fused_cuda, "_cuda_unavailable", lambda: None)
    monkeypatch.setattr(fused_cuda, "_render", broken)
    args = (type("Cloud", (), {"device": "cuda"})(), None, None, None, None, 4, 4)
    with pytest.raises(RenderError, match=r"render\.backend=fused failed on device .*libNVVM"):
        fused_cuda.render_fused_cuda(*args, RenderConfig(backend="fused"))
    assert fused_cuda.cuda_unavailable() is None
    assert fused_cuda.render_fused_cuda(*args, RenderConfig(backend="auto")) is None
    assert "libNVVM" in fused_cuda.cuda_unavailable()  # later calls go straight to the torch path
