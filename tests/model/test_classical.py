"""The classical completer: holes filled from reference frames by reprojection, from the agent's history on a
revisit, never from a frame in which the point is hidden, and inpainted where nothing shows them."""

import numpy as np
import pytest
import torch

from inspatio_sim.conventions import intrinsics_from_fov
from inspatio_sim.errors import ConfigError
from inspatio_sim.metrics import psnr
from inspatio_sim.model.cache import CacheConfig, SpatiotemporalCache
from inspatio_sim.model.classical import (
    SOURCE_HISTORY,
    SOURCE_INPAINT,
    SOURCE_REFERENCE,
    ClassicalCompleter,
    ClassicalConfig,
)
from inspatio_sim.render import RenderOutput
from tests.model.scenes import camera, references, view

H, W = 48, 64
K = intrinsics_from_fov(W, H, 70.0)
KT = torch.as_tensor(K, dtype=torch.float32)
TARGET = camera(-0.4, 0.25, yaw_deg=5.0)


def _holed_render(pose, hole):
    """The exact view with ``hole (H, W)`` punched out as the World would leave it (invalid, depth 0, a smear)."""
    rgb, depth = view(pose, K, H, W)
    rgb = rgb.clone()
    rgb[hole] = 77
    return RenderOutput(rgb=rgb[None], depth=torch.where(hole, 0.0, depth)[None], valid=(~hole)[None]), view(pose, K,
                                                                                                          H, W)[0]


def _complete(refs, frame, pose, cache=None, config=None):
    cache = cache or SpatiotemporalCache(refs, 1, H, W, CacheConfig(ref_slots=3))
    poses = torch.as_tensor(pose, dtype=torch.float32)[None]
    cache.select(poses, torch.zeros(1, dtype=torch.float64), frame.depth, ~frame.valid, KT, force=True)
    done = ClassicalCompleter(config).complete(frame, poses, KT, cache.slots())
    cache.push(done.rgb, done.depth, poses, torch.zeros(1, dtype=torch.float64))
    return done, cache


def _hole():
    hole = torch.zeros(H, W, dtype=torch.bool)
    hole[12:36, 20:44] = True
    return hole


def test_holes_are_filled_from_the_reference_frames_that_saw_them():
    refs = references([camera(0.0, y) for y in np.linspace(-1.5, 1.5, 7)])
    hole = _hole()
    frame, truth = _holed_render(TARGET, hole)
    done, _ = _complete(refs, frame, TARGET)
    assert done.rgb.shape == (1, H, W, 3) and done.rgb.dtype == torch.uint8
    assert torch.equal(done.filled[0], hole) and (done.source[0][hole] == SOURCE_REFERENCE).all()
    assert torch.equal(done.rgb[0][~hole], frame.rgb[0][~hole])  # rendered pixels are never touched
    assert psnr(done.rgb[0].numpy()[hole.numpy()], truth.numpy()[hole.numpy()]) > 30
    _, exact_depth = view(TARGET, K, H, W)
    assert torch.allclose(done.depth[0][hole], exact_depth[hole], rtol=0.03)  # a plane: the smooth hypothesis


def test_textureless_reference_pixels_without_depth_still_give_their_colour():
    refs = references([camera(0.0, y) for y in np.linspace(-1.5, 1.5, 7)])
    refs.depth[:, 8:40, 10:54] = 0.0  # the reconstruction lost depth on most of every frame
    hole = _hole()
    frame, truth = _holed_render(TARGET, hole)
    done, _ = _complete(refs, frame, TARGET)
    assert (done.source[0][hole] == SOURCE_REFERENCE).float().mean() > 0.95
    assert psnr(done.rgb[0].numpy()[hole.numpy()], truth.numpy()[hole.numpy()]) > 28


def test_a_reference_frame_that_sees_an_occluder_in_front_is_not_used():
    refs = references([camera(0.0, 0.0)])
    refs.depth[0] = torch.where(refs.depth[0] > 0, 1.0, 0.0)  # this frame sees something 1 m away, not the wall
    refs.rgb[0] = torch.tensor([255, 0, 0], dtype=torch.uint8)
    hole = _hole()
    frame, _ = _holed_render(TARGET, hole)
    done, _ = _complete(refs, frame, TARGET)
    assert (done.source[0][hole] == SOURCE_INPAINT).all()
    red = (done.rgb[0][hole].int() - torch.tensor([255, 0, 0])).abs().sum(-1) < 60
    assert not red.any()
    # inpainting continues the surroundings instead of leaving the smear
    assert (done.rgb[0][hole] != 77).any(-1).float().mean() > 0.9


def test_a_revisit_shows_what_was_completed_before_from_the_agents_history():
    refs = references([camera(0.0, y) for y in np.linspace(-1.5, 1.5, 7)])
    hole = _hole()
    frame, _ = _holed_render(TARGET, hole)
    first, cache = _complete(refs, frame, TARGET)
    poses = torch.as_tensor(TARGET, dtype=torch.float32)[None]
    slots = cache.slots()
    slots.ref_valid[:] = False  # the reference frames are gone: only the agent's own history can explain the hole
    again = ClassicalCompleter().complete(frame, poses, KT, slots)
    assert (again.source[0][hole] == SOURCE_HISTORY).float().mean() > 0.95
    assert psnr(again.rgb[0].numpy(), first.rgb[0].numpy()) > 40
    # without history the hole is inpainted
    lost = ClassicalCompleter(ClassicalConfig(use_history=False)).complete(frame, poses, KT, slots)
    assert (lost.source[0][hole] == SOURCE_INPAINT).all()


def test_nothing_to_complete_returns_the_render_unchanged():
    refs = references([camera(0.0, 0.0)])
    frame, _ = _holed_render(TARGET, torch.zeros(H, W, dtype=torch.bool))
    done, _ = _complete(refs, frame, TARGET)
    assert torch.equal(done.rgb, frame.rgb) and not done.filled.any()


def test_bad_settings_are_refused_with_the_key():
    with pytest.raises(ConfigError, match="inpaint"):
        ClassicalConfig(inpaint="magic").validate()
    with pytest.raises(ConfigError, match="depth_tolerance"):
        ClassicalConfig(depth_tolerance=0).validate()
