"""The model step inside the Simulator on the tiny oracle room: ``none`` is the explicit render, ``classical``
completes holes better than push-pull, a revisit shows the same content, agents do not see each other's writes,
and nothing written back becomes geometry."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from inspatio_sim.config import compose, to_dataclass
from inspatio_sim.conventions import intrinsics_from_fov
from inspatio_sim.metrics import psnr
from inspatio_sim.model import ClassicalConfig, ModelConfig, ReferenceFrames, WritebackConfig
from inspatio_sim.model.classical import SOURCE_INPAINT, SOURCE_REFERENCE, SOURCE_RENDER, SOURCE_WRITEBACK
from inspatio_sim.oracle import Oracle
from inspatio_sim.render import render_world
from inspatio_sim.scene_source import load_scene
from inspatio_sim.simulator import CameraConfig, Simulator
from inspatio_sim.world import WorldConfig, build_world

H, W = 48, 64


@pytest.fixture(scope="module")
def tiny():
    cfg = compose(["scene=tiny"])
    scene = load_scene(cfg.scene, progress=False)
    world = build_world(scene, to_dataclass(WorldConfig, cfg.world, "world"))
    refs = ReferenceFrames.from_scene(scene, min_confidence=world.config.min_confidence)
    return cfg, scene, world, refs


def _sim(tiny, b=1, **model):
    _, _, world, refs = tiny
    return Simulator(world, b, camera=CameraConfig(width=W, height=H, hfov_deg=90.0),
                     model=ModelConfig(**model), references=refs)


def _place(sim, poses):
    sim.escm.reset(torch.as_tensor(np.stack(poses), dtype=torch.float32), torch.ones(sim.num_agents, dtype=bool))


def _off_path(scene, i, yaw_deg, shift=(0.0, 0.0)):
    """A recorded pose turned by ``yaw_deg`` about the world z axis and shifted horizontally."""
    T = scene.poses[i].copy()
    a = np.deg2rad(yaw_deg)
    Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    T[:3, :3] = Rz @ T[:3, :3]
    T[:2, 3] += shift
    return T


def test_model_none_is_exactly_the_explicit_render(tiny):
    _, scene, world, _ = tiny
    sim = _sim(tiny, name="none")
    assert sim.model is None
    _place(sim, [_off_path(scene, 3, 60.0)])
    out = sim.observe()
    ref = render_world(world, sim.poses(), sim.time, sim.K, H, W, sim.render_config)
    assert torch.equal(out.rgb, ref.rgb) and torch.equal(out.valid, ref.valid)


def test_classical_completes_lost_depth_from_the_video_far_better_than_push_pull(tiny):
    """Where the reconstruction lost depth (plain surfaces), the World has holes but the video has the colours."""
    cfg, scene, _, _ = tiny
    lost = copy.deepcopy(scene)
    lost.depth[:, 10:45, 20:80] = 0.0  # most of every frame without depth, as on a textureless wall
    # no backdrop: the lost pixels stay holes for the completer (with it, they are drawn on the far backdrop shell)
    world = build_world(lost, dataclasses.replace(to_dataclass(WorldConfig, cfg.world, "world"), sky=False))
    refs = ReferenceFrames.from_scene(lost, min_confidence=world.config.min_confidence)
    poses = [_off_path(scene, i, yaw, (0.1, -0.1)) for i, yaw in ((2, 10.0), (6, -10.0), (9, 5.0))]
    camera = CameraConfig(width=W, height=H, hfov_deg=60.0)
    none = Simulator(world, 3, camera=camera)
    classical = Simulator(world, 3, camera=camera, model=ModelConfig(name="classical"), references=refs)
    for sim in (none, classical):
        _place(sim, poses)
    a, b = none.observe(), classical.observe()
    hole = ~a.valid
    assert torch.equal(a.valid, b.valid) and hole.float().mean() > 0.1
    assert torch.equal(a.rgb[~hole], b.rgb[~hole])  # rendered pixels are untouched
    K = intrinsics_from_fov(W, H, 60.0)
    oracle_cfg = cfg.scene.oracle
    with Oracle(oracle_cfg.preset, int(oracle_cfg.seed)) as oracle:
        # the ESCM keeps the camera level at its height: the truth is rendered where the agents really are
        truth = oracle.render(none.poses().double().numpy(), np.zeros(3), K, W, H, supersample=1).rgb
    m = hole.numpy()
    p_none, p_classical = psnr(a.rgb.numpy(), truth, m), psnr(b.rgb.numpy(), truth, m)
    assert p_classical > p_none + 1.0, (p_none, p_classical)
    # the pixels the video saw (taken from its frames) gain most; the rest (never filmed) are inpainted
    seen = (classical.model.last.source == SOURCE_REFERENCE).numpy() & m
    assert seen.sum() > 0.3 * m.sum()
    assert psnr(b.rgb.numpy(), truth, seen) > psnr(a.rgb.numpy(), truth, seen) + 3.0


def test_classical_re_derives_depthless_content_drawn_on_the_backdrop(tiny):
    """With the backdrop on (the default), depth-less video colours are drawn on a far shell: valid pixels, but
    misplaced once the camera leaves the path. The completer re-derives them from the video at the depth their
    surroundings suggest; pixels nothing explains keep the backdrop's colour."""
    cfg, scene, _, _ = tiny
    lost = copy.deepcopy(scene)
    lost.depth[:, 10:45, 20:80] = 0.0
    world = build_world(lost, to_dataclass(WorldConfig, cfg.world, "world"))
    refs = ReferenceFrames.from_scene(lost, min_confidence=world.config.min_confidence)
    poses = [_off_path(scene, i, yaw, (0.1, -0.1)) for i, yaw in ((2, 10.0), (6, -10.0), (9, 5.0))]
    camera = CameraConfig(width=W, height=H, hfov_deg=60.0)
    none = Simulator(world, 3, camera=camera)
    sims = {b: Simulator(world, 3, camera=camera, references=refs,
                         model=ModelConfig(name="classical", classical=ClassicalConfig(backdrop=b)))
            for b in (True, False)}
    for sim in (none, *sims.values()):
        _place(sim, poses)
    a = none.observe()
    on, off = sims[True].observe(), sims[False].observe()
    backdrop = (a.valid & (a.depth <= 0)).numpy()
    assert backdrop.mean() > 0.1
    assert torch.equal(off.rgb[a.valid], a.rgb[a.valid])  # backdrop=false leaves every rendered pixel alone
    last = sims[True].model.last
    kept = backdrop & (last.source == SOURCE_RENDER).numpy()
    assert np.array_equal(on.rgb.numpy()[kept], a.rgb.numpy()[kept])  # unexplained backdrop pixels keep their colour
    assert not last.filled.numpy()[kept].any()
    with Oracle(cfg.scene.oracle.preset, int(cfg.scene.oracle.seed)) as oracle:
        truth = oracle.render(none.poses().double().numpy(), np.zeros(3), intrinsics_from_fov(W, H, 60.0), W, H,
                              supersample=1).rgb
    assert psnr(on.rgb.numpy(), truth, backdrop) > psnr(a.rgb.numpy(), truth, backdrop) + 1.0


def test_a_revisit_shows_the_same_completed_content_and_agents_keep_their_writes(tiny):
    _, scene, world, _ = tiny
    # without history slots, only the write-back can bring back what was invented here
    sim = _sim(tiny, 2, name="classical", writeback=WritebackConfig(scope="per_agent"),
               classical=ClassicalConfig(use_history=False))
    a, b = _off_path(scene, 4, 120.0), _off_path(scene, 8, -100.0, (0.3, 0.0))
    sdf = world.occupancy.sdf.clone()
    _place(sim, [a, b])
    first = sim.observe()
    first_source = sim.model.last.source[0].clone()
    hole = ~first.valid[0]
    assert hole.any()
    sim.reset(torch.tensor([False, True]), [np.random.default_rng(0)] * 2)  # agent 1 forgets its own writes
    _place(sim, [b, a])  # ... and now stands where agent 0 wrote
    sim.observe()
    assert not (sim.model.last.source[1] == SOURCE_WRITEBACK).any()  # agent 0's writes are not agent 1's
    _place(sim, [a, a])
    again = sim.observe()
    # what was invented there (no video frame showed it) comes back from the write-back; the rest from the video
    assert (first_source[hole] == SOURCE_INPAINT).any()
    back = sim.model.last.source[0][first_source == SOURCE_INPAINT]
    assert (back == SOURCE_WRITEBACK).float().mean() > 0.8
    assert psnr(again.rgb[0].numpy(), first.rgb[0].numpy(), hole.numpy()) > 35
    assert torch.equal(world.occupancy.sdf, sdf)  # write-back never becomes geometry
    sim.reset(torch.tensor([True, False]), [np.random.default_rng(0)] * 2)
    assert sim.model.pool.num_points[0] == 0 and sim.model.pool.num_points[1] > 0


def test_model_star_is_refused_until_a_checkpoint_ships(tiny):
    from inspatio_sim.errors import ConfigError

    with pytest.raises(ConfigError, match="star"):
        _sim(tiny, name="star")
