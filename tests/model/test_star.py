"""The STAR generator: causal masking, key/value reuse, checkpoints, the student's output, a tiny training run, the
DMD gradient in closed form, and the completer inside the Simulator."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from inspatio_sim.config import compose, to_dataclass
from inspatio_sim.errors import CheckpointError, ConfigError
from inspatio_sim.model import ModelConfig, ReferenceFrames
from inspatio_sim.model.classical import SOURCE_HISTORY, SOURCE_RENDER, SOURCE_WRITEBACK
from inspatio_sim.model.star import checkpoint as ckpt
from inspatio_sim.model.star.completer import StarConfig
from inspatio_sim.model.star.flow import sample
from inspatio_sim.model.star.jdmd import dmd_direction, dmd_loss
from inspatio_sim.model.star.network import FRAME_CHANNELS, SLOT_CHANNELS, NetConfig, STARNet
from inspatio_sim.model.star.train import Episode, TrainStarConfig, train
from inspatio_sim.render import render_world
from inspatio_sim.scene_source import load_scene
from inspatio_sim.simulator import CameraConfig, Simulator
from inspatio_sim.world import WorldConfig, build_world

TINY = NetConfig(patch=8, dim=32, layers=2, heads=2, mlp_ratio=2.0)


def _net(seed=0, config=TINY):
    torch.manual_seed(seed)
    net = STARNet(config).eval()
    with torch.no_grad():  # the head starts at zero: give it weights so outputs depend on the inputs
        net.head.weight.normal_(0, 0.05)
    return net


@pytest.fixture
def star_file(tmp_path):
    return ckpt.save(tmp_path / "star.pt", {"teacher": _net(1), "student": _net(2)}, {"note": "test"})


def test_a_frame_never_attends_to_the_future():
    net = _net()
    g = torch.Generator().manual_seed(0)
    b, steps, h, w = 2, 5, 16, 24
    frames = torch.randn((b, steps, h, w, FRAME_CHANNELS), generator=g)
    clean = torch.randn((b, steps, h, w, SLOT_CHANNELS), generator=g)
    refs = net.encode_slots(torch.randn((b * 3, h, w, SLOT_CHANNELS), generator=g), 0).reshape(b, 3, 2, 2, 6, 32)
    t = torch.rand((b, steps), generator=g)
    with torch.no_grad():
        out = net.forward_sequence(frames, t, clean, refs, None, history=2)
        frames2, clean2 = frames.clone(), clean.clone()
        frames2[:, 3] += 1.0
        clean2[:, 3] += 1.0
        out2 = net.forward_sequence(frames2, t, clean2, refs, None, history=2)
    assert torch.equal(out[:, :3], out2[:, :3])  # the past is bit-identical
    assert not torch.allclose(out[:, 3:], out2[:, 3:])  # the changed frame and its successors do change
    assert not torch.allclose(out[:, 4], out2[:, 4])  # frame 4 reads frame 3 through its history slot


def _tiny_world():
    cfg = compose(["scene=tiny"])
    scene = load_scene(cfg.scene, progress=False)
    world = build_world(scene, to_dataclass(WorldConfig, cfg.world, "world"))
    return world, ReferenceFrames.from_scene(scene, min_confidence=world.config.min_confidence)


@pytest.fixture(scope="module")
def tiny_world():
    return _tiny_world()


def _star_sim(tiny_world, path, b=2, sampler="student", steps=2, size=(32, 24), **cache):
    world, refs = tiny_world
    model = ModelConfig(name="star", star=StarConfig(checkpoint=str(path), sampler=sampler, steps=steps))
    model.cache = dataclasses.replace(model.cache, **cache)
    sim = Simulator(world, b, camera=CameraConfig(width=size[0], height=size[1], hfov_deg=90.0), model=model,
                    references=refs)
    sim.reset(None, [np.random.default_rng(i) for i in range(b)])
    return sim


def _roll(sim, n, recompute=False):
    out = []
    action = torch.tensor([[0.6, 0.4]]).expand(sim.num_agents, 2)
    for _ in range(n):
        sim.step(action)
        if recompute:
            sim.model.completer.state.ref_idx.fill_(-1)  # forget every reference slot's keys/values
        out.append(sim.observe().rgb.clone())
    return torch.stack(out)


def test_kv_reuse_equals_recomputation_and_saves_work(tiny_world, star_file):
    reused = _star_sim(tiny_world, star_file)
    fresh = _star_sim(tiny_world, star_file)
    a, b = _roll(reused, 6), _roll(fresh, 6, recompute=True)
    assert torch.equal(a, b)
    k = reused.model.cache.config.ref_slots
    assert reused.model.completer.state.recomputed < fresh.model.completer.state.recomputed == 6 * 2 * k


def test_student_output_shape_dtype_range_and_determinism(tiny_world, star_file):
    sim = _star_sim(tiny_world, star_file, b=3)
    obs = _roll(sim, 3)
    assert obs.shape == (3, 3, 24, 32, 3) and obs.dtype == torch.uint8
    done = sim.model.last
    frame_valid = sim.observe().valid
    assert done.filled.any()
    assert (done.source[~done.filled] == SOURCE_RENDER).all()
    again = _roll(_star_sim(tiny_world, star_file, b=3), 3)
    assert torch.equal(obs, again)  # seeded noise: the same rollout twice
    other = _star_sim(tiny_world, star_file, b=3)
    other.reset(None, [np.random.default_rng(100 + i) for i in range(3)])
    assert frame_valid.dtype == torch.bool
    x = sample(lambda x, t: torch.zeros_like(x), (2, 8, 8, 3), 4, torch.device("cpu"),
               [torch.Generator().manual_seed(i) for i in range(2)])
    assert x.shape == (2, 8, 8, 3) and x.dtype == torch.float32 and torch.isfinite(x).all()


def test_an_untrained_network_reproduces_the_classical_completion(tiny_world, tmp_path):
    # the head starts at zero: x0 = the explicit (classical) completion, exactly, whatever the noise
    zero = STARNet(TINY).eval()
    path = ckpt.save(tmp_path / "zero.pt", {"teacher": zero, "student": zero}, {})
    star = _roll(_star_sim(tiny_world, path, b=2, steps=4), 4)
    world, refs = tiny_world
    sim = Simulator(world, 2, camera=CameraConfig(width=32, height=24, hfov_deg=90.0),
                    model=ModelConfig(name="classical"), references=refs)
    sim.reset(None, [np.random.default_rng(i) for i in range(2)])
    classical = _roll(sim, 4)
    assert torch.equal(star, classical)


def test_refine_holes_keeps_the_render_pixels(tiny_world, star_file):
    sim = _star_sim(tiny_world, star_file, b=2)
    sim.model.completer.config.refine = "holes"
    obs = _roll(sim, 2)[-1]
    frame = render_world(sim.world, sim.poses(), sim.time, sim.K, 24, 32, sim.render_config)
    keep = frame.valid & ~sim.model.last.filled
    assert torch.equal(obs[keep], frame.rgb[keep])
    everywhere = _roll(_star_sim(tiny_world, star_file, b=2), 2)[-1]
    assert not torch.equal(everywhere[keep], frame.rgb[keep])  # refine=all paints the render's pixels too
    with pytest.raises(ConfigError, match="refine"):
        StarConfig(refine="some").validate()


def test_refine_fresh_carries_what_the_agent_generated_before(tiny_world, star_file):
    sim = _star_sim(tiny_world, star_file, b=2)
    sim.model.completer.config.refine = "fresh"
    obs = _roll(sim, 4)[-1]
    base = sim.model.completer.last_explicit
    carried = (base.source == SOURCE_HISTORY) | (base.source == SOURCE_WRITEBACK)
    assert carried.any()  # the cameras turn: holes the agent saw before come from its own earlier frames
    assert torch.equal(obs[carried], base.rgb[carried])
    assert not torch.equal(obs[~carried], base.rgb[~carried])  # everything else is refined


def test_any_camera_size_is_padded_to_patches_and_cropped_back(tiny_world, star_file):
    sim = _star_sim(tiny_world, star_file, b=1, size=(30, 20), sampler="teacher", steps=3)
    obs = _roll(sim, 2)
    assert obs.shape == (2, 1, 20, 30, 3)
    assert sim.model.last.filled.any()


def test_checkpoint_round_trips_bit_exactly(tmp_path):
    net = _net(3)
    path = ckpt.save(tmp_path / "a.pt", {"student": net}, {"k": 1})
    nets, meta, _ = ckpt.load(path, want="student")
    back = nets["student"]
    assert meta == {"k": 1}
    for (k, v), (k2, v2) in zip(net.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    frame = torch.randn(1, 16, 16, FRAME_CHANNELS)
    with torch.no_grad():
        assert torch.equal(net(frame, torch.tensor([0.5])), back(frame, torch.tensor([0.5])))
    shipped = ckpt.export(path, tmp_path / "b.pt")
    nets2, meta2, extra2 = ckpt.load(shipped)
    assert set(nets2) == {"student"} and meta2 == {"k": 1} and extra2 == {}
    assert all(torch.equal(v, nets2["student"].state_dict()[k]) for k, v in net.state_dict().items())


def test_bad_checkpoints_are_rejected_naming_the_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match=r"nope\.pt does not exist"):
        ckpt.load(missing)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"junk\.pt is corrupt"):
        ckpt.load(junk)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(CheckpointError, match=r"other\.pt is not a inspatio-sim/star checkpoint"):
        ckpt.load(other)
    path = ckpt.save(tmp_path / "teacher_only.pt", {"teacher": _net()}, {})
    with pytest.raises(CheckpointError, match=r"teacher_only\.pt has no student network"):
        ckpt.load(path, want="student")
    payload = torch.load(path, weights_only=True)
    payload["net"]["dim"] = 64
    torch.save(payload, tmp_path / "shapes.pt")
    with pytest.raises(CheckpointError, match=r"shapes\.pt: teacher\..* has shape .* expected"):
        ckpt.load(tmp_path / "shapes.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        ModelConfig(name="star", star=StarConfig(checkpoint=str(missing))).validate() or _star_sim(
            _tiny_world(), missing)


def _walk(e: int, steps: int) -> torch.Tensor:
    """``(e, steps, 4, 4)`` cameras stepping 5 cm to the right per step (their views overlap)."""
    poses = torch.eye(4).repeat(e, steps, 1, 1)
    poses[..., 0, 3] = 0.05 * torch.arange(steps, dtype=torch.float32)
    return poses


def test_a_tiny_training_run_lowers_the_loss(tmp_path):
    g = torch.Generator().manual_seed(0)
    e, steps, h, w = 4, 4, 16, 16
    gt = torch.linspace(-1, 1, w)[None, None, None, :, None].expand(e, steps, h, w, 3).clone()
    valid = torch.rand((e, steps, h, w), generator=g) > 0.3
    render = ((gt + 1) * 127.5).round().to(torch.uint8)
    ep = Episode(render_rgb=render, valid=valid,
                 depth=torch.full((e, steps, h, w), 2.0), rays=torch.randn((e, steps, h, w, 6), generator=g) * 0.1,
                 gt=gt, ref_index=torch.zeros((e, steps, 2), dtype=torch.int64),
                 refs=torch.randn((3, h, w, SLOT_CHANNELS), generator=g),
                 base_rgb=torch.where(valid[..., None], render, 128), base_depth=torch.full((e, steps, h, w), 2.0),
                 invented=~valid, poses=_walk(e, steps), K=torch.tensor([[8.0, 0, 7.5], [0, 8.0, 7.5], [0, 0, 1]]))
    cfg = TrainStarConfig(stage="teacher", out=str(tmp_path / "t.pt"), iterations=60, batch=4, window=3,
                          save_every=30, lr=3e-3, net=dataclasses.replace(TINY, patch=4))
    summary = train(cfg, episodes=[ep], progress=False)
    assert summary["loss_last"] < 0.85 * summary["loss_first"]
    student = train(dataclasses.replace(cfg, stage="student", student_iterations=4, save_every=2, student_steps=2),
                    episodes=[ep], progress=False)
    nets, _, _ = ckpt.load(tmp_path / "t.pt", want="student")
    assert {"teacher", "student", "fake"} <= set(nets) and math.isfinite(student["loss_last"])
    curve = (tmp_path / "t_student_curve.csv").read_text().splitlines()
    temporal = [float(r.split(",")[curve[0].split(",").index("temporal")]) for r in curve[1:]]
    assert all(math.isfinite(v) and v > 0 for v in temporal)  # the cameras overlap: the temporal term is active
    assert (tmp_path / "t_teacher_curve.csv").is_file() and (tmp_path / "t_teacher_curve.png").is_file()


def test_dmd_gradient_matches_its_closed_form_on_a_1d_gaussian():
    # real data ~ N(mr, sr^2), the student's samples ~ N(mf, sf^2); x_t = (1 - t) x + t eps.  For a Gaussian the
    # clean estimate E[x | x_t] is linear in x_t, so "teacher" and "fake" are exact; the DMD direction must equal
    # x0_fake - x0_real = t^2 / (1 - t) (s_fake - s_real)(x_t), the score difference the KL gradient is made of.
    mr, sr, mf, sf = 0.5, 0.3, -0.2, 0.6

    def posterior_velocity(m, s):
        def v(x_t, t):
            tt = t.reshape(-1, *([1] * (x_t.dim() - 1)))
            var = (1 - tt) ** 2 * s**2 + tt**2
            x0 = m + (1 - tt) * s**2 / var * (x_t - (1 - tt) * m)
            return (x_t - x0) / tt  # x0 = x_t - t v
        return v

    def score(m, s, x_t, t):
        return -(x_t - (1 - t) * m) / ((1 - t) ** 2 * s**2 + t**2)

    g = torch.Generator().manual_seed(0)
    x = (mf + sf * torch.randn((64, 1, 1, 1), generator=g, dtype=torch.float64)).requires_grad_(True)
    t = torch.rand(64, generator=g, dtype=torch.float64) * 0.9 + 0.05
    eps = torch.randn((64, 1, 1, 1), generator=g, dtype=torch.float64)
    d = dmd_direction(x, t, eps, posterior_velocity(mr, sr), posterior_velocity(mf, sf), normalise=False)
    tt = t.reshape(-1, 1, 1, 1)
    x_t = (1 - tt) * x.detach() + tt * eps
    closed = tt**2 / (1 - tt) * (score(mf, sf, x_t, tt) - score(mr, sr, x_t, tt))
    torch.testing.assert_close(d, closed, rtol=1e-9, atol=1e-12)
    dmd_loss(x, d).backward()
    torch.testing.assert_close(x.grad, closed / 64, rtol=1e-9, atol=1e-12)
    # and it points the student toward the real mean: the mean step moves mf toward mr
    assert float((x.detach() - d).mean()) > float(x.detach().mean())


def test_star_config_is_validated():
    with pytest.raises(ConfigError, match="sampler"):
        StarConfig(sampler="ode").validate()
    with pytest.raises(ConfigError, match="steps"):
        StarConfig(steps=0).validate()


def test_train_command_maps_short_keys_and_fails_cleanly_without_data(tmp_path, capsys):
    from inspatio_sim.cli import main

    code = main(["train", "star", "stage=teacher", f"data={tmp_path / 'none'}", f"out={tmp_path / 's.pt'}"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no training data at" in err[0] and str(tmp_path / "none") in err[0]
    from inspatio_sim.cli import _train_key

    assert _train_key("star", "out=x.pt") == "train.star.out=x.pt"  # not the top-level `out`
    assert _train_key("star", "net.dim=64") == "train.star.net.dim=64"
    assert _train_key("star", "device=cpu") == "device=cpu" and _train_key("star", "model.name=x") == "model.name=x"


def test_the_x0_weighting_is_the_clean_estimates_error():
    from inspatio_sim.model.star.flow import clean_estimate, flow_loss, noised

    g = torch.Generator().manual_seed(0)
    x, eps, v = (torch.randn((3, 4, 4, 3), generator=g) for _ in range(3))
    t = torch.rand(3, generator=g) * 0.9 + 0.1
    valid = torch.ones((3, 4, 4), dtype=torch.bool)
    x_t = noised(x, eps, t)
    x0_err = ((clean_estimate(x_t, v, t) - x) ** 2).mean()
    torch.testing.assert_close(flow_loss(v, x, eps, valid, 1.0, t, "x0"), x0_err)
    torch.testing.assert_close(flow_loss(v, x, eps, valid, 1.0), ((v - (eps - x)) ** 2).mean())
    with pytest.raises(ValueError, match="needs the flow times"):
        flow_loss(v, x, eps, valid, 1.0, None, "x0")
    with pytest.raises(ConfigError, match="time_sampling"):
        TrainStarConfig(time_sampling="beta").validate()


def test_episode_noise_repeats_each_step_and_step_noise_does_not(tiny_world, star_file):
    sim = _star_sim(tiny_world, star_file, b=2)
    completer = sim.model.completer
    assert completer.config.noise == "episode"

    def draw():
        return torch.stack([torch.randn(4, generator=g) for g in completer._noise_generators()])

    first = draw()
    _roll(sim, 2)
    assert torch.equal(draw(), first) and not torch.equal(first[0], first[1])  # per agent, fixed per episode
    sim.reset(None, [np.random.default_rng(50 + i) for i in range(2)])
    assert not torch.equal(draw(), first)  # a new episode draws new noise
    completer.config.noise = "step"
    assert not torch.equal(draw(), draw())
    with pytest.raises(ConfigError, match="noise"):
        StarConfig(noise="frame").validate()
