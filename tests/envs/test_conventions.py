"""Gymnasium 1.x conventions of the environments: seeding, torch outputs, close(), argument checks, layering."""

import gc
import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401
from inspatio_sim.assemble import cached_worlds
from inspatio_sim.errors import ConfigError

SMALL = {"overrides": ["scene=small"], "width": 32, "height": 24}
def _to_torch(value, device):
    """What Gymnasium's NumpyToTorch wrapper does to outputs (it needs array-api-compat, not installed here)."""
    if isinstance(value, dict):
        return {k: _to_torch(v, device) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_to_torch(v, device) for v in value)
    return torch.as_tensor(value, device=device)


DEVICES = [pytest.param("cpu"),
           pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                         reason="no CUDA device on this machine"))]


def test_unseeded_resets_draw_fresh_entropy_in_vector_and_single_envs():
    starts = []
    for _ in range(2):
        vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=2, **SMALL)
        vec.reset()
        starts.append(vec.unwrapped.sim.poses().clone())
        vec.close()
    assert not torch.equal(starts[0], starts[1])  # two processes' worth of entropy, not seeds 0..B-1 forever
    singles = [gym.make("InSpatio/VideoWorld-v0", **SMALL) for _ in range(2)]
    poses = [e.reset()[1]["pose"] for e in singles]
    assert not np.array_equal(poses[0], poses[1])
    # a seeded reset, then unseeded ones, continue one stream: reproducible
    runs = []
    for _ in range(2):
        vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=2, **SMALL)
        vec.reset(seed=4)
        runs.append([vec.reset()[1]["pose"] for _ in range(2)])
        vec.close()
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[0][1])
    # a list of seeds with None: env 1 keeps its stream, env 0 is reseeded
    vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=2, **SMALL)
    vec.reset(seed=[7, None])
    first = vec.unwrapped.sim.poses().clone()
    vec.reset(seed=[7, None])
    again = vec.unwrapped.sim.poses()
    assert torch.equal(again[0], first[0]) and not torch.equal(again[1], first[1])
    with pytest.raises(ConfigError, match="seed"):
        vec.reset(seed=[1, 2, 3])
    with pytest.raises(ConfigError, match="seeds must be integers >= 0"):
        vec.reset(seed=[-1, 0])


@pytest.mark.parametrize("device", DEVICES)
def test_torch_outputs_are_on_the_requested_device_and_match_numpy_to_torch(device):
    kwargs = {**SMALL, "depth": True, "device": device}
    vec = gym.make_vec("InSpatio/PointNav-v0", num_envs=2, torch_obs=True, **kwargs)
    ref = gym.make_vec("InSpatio/PointNav-v0", num_envs=2, **kwargs)  # numpy outputs
    want = torch.device(device)
    obs, info = vec.reset(seed=1)
    ref_obs, ref_info = _to_torch(ref.reset(seed=1), want)
    space = vec.single_observation_space
    for key, value in obs.items():
        assert isinstance(value, torch.Tensor) and value.device.type == want.type, key
        assert tuple(value.shape) == (2, *space[key].shape), key
        assert value.dtype == torch.from_numpy(np.zeros(0, space[key].dtype)).dtype, key
        assert all(space[key].contains(v) for v in value.cpu().numpy()), key
        torch.testing.assert_close(value, ref_obs[key], rtol=0, atol=0)
    for key, value in info.items():
        assert value.device.type == want.type, key
        torch.testing.assert_close(value, ref_info[key], rtol=0, atol=0)
    actions = torch.tensor([[1.0, 0.3], [0.5, -1.0]], device=device)
    for _ in range(3):
        out = vec.step(actions)
        ref_out = _to_torch(ref.step(actions.cpu().numpy()), want)
        for got, exp in zip(out[:4], ref_out[:4], strict=True):
            if isinstance(got, dict):
                for key in got:
                    assert got[key].device.type == want.type
                    torch.testing.assert_close(got[key], exp[key], rtol=0, atol=0)
            else:
                assert got.device.type == want.type
                torch.testing.assert_close(got, exp, rtol=0, atol=0)
        assert set(out[4]) == set(ref_out[4])
        for key, value in out[4].items():
            assert value.device.type == want.type, key
            torch.testing.assert_close(value, ref_out[4][key], rtol=0, atol=0)
    vec.close()
    ref.close()


def test_close_releases_the_pybullet_client_and_the_shared_world():
    import pybullet as pb

    kwargs = {"overrides": ["scene=small", "world.seed=5"], "width": 16, "height": 12}  # a World of its own
    single = gym.make("InSpatio/VideoWorld-v0", action_model="robot", **kwargs)
    vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=2, **kwargs)
    world = vec.unwrapped.sim.world
    assert single.unwrapped.simulator.world is world  # built once, shared
    client = single.unwrapped.simulator.escm.robot.client
    assert pb.isConnected(client)
    single.close()
    assert not pb.isConnected(client)
    gc.collect()
    assert any(w is world for w in cached_worlds())  # the vector env still uses it
    vec.close()
    del world, single, vec
    gc.collect()
    assert all(w.config.seed != 5 for w in cached_worlds())  # released: nobody uses it


def test_unknown_arguments_tasks_and_task_settings_are_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"unknown pointnav task setting\(s\) 'succes_radius' \(did you mean "
                                          r"'success_radius'\?\)"):
        gym.make("InSpatio/PointNav-v0", task_kwargs={"succes_radius": 0.3}, **SMALL)
    with pytest.raises(ConfigError, match=r"explore task setting.*it has no settings"):
        gym.make_vec("InSpatio/Explore-v0", num_envs=2, task_kwargs={"radius": 1.0}, **SMALL)
    with pytest.raises(ConfigError, match="0 < success_radius < min_geodesic <= max_geodesic"):
        gym.make("InSpatio/PointNav-v0", task_kwargs={"min_geodesic": 3.0, "max_geodesic": 2.0}, **SMALL)
    with pytest.raises(ConfigError, match="finite number"):
        gym.make("InSpatio/PointNav-v0", task_kwargs={"step_penalty": "lots"}, **SMALL)
    with pytest.raises(ConfigError, match="unknown task 'pointgoal'"):
        gym.make("InSpatio/PointNav-v0", task="pointgoal", **SMALL)
    with pytest.raises(ConfigError, match=r"'widht' \(did you mean 'width'\?\)"):
        gym.make("InSpatio/VideoWorld-v0", widht=32, overrides=["scene=small"])
    with pytest.raises(ConfigError, match="num_envs"):
        gym.make_vec("InSpatio/VideoWorld-v0", num_envs=0, **SMALL)
    with pytest.raises(ConfigError, match="autoreset_mode is a setting of the vector environment"):
        gym.make("InSpatio/VideoWorld-v0", autoreset_mode="same_step", **SMALL)
    with pytest.raises(ConfigError, match="device 'cuda:99'"):
        gym.make("InSpatio/VideoWorld-v0", device="cuda:99", **SMALL)


def test_the_core_imports_no_face():
    code = ("import json, sys, importlib\n"
            "for m in sys.argv[1:]: importlib.import_module(m)\n"
            "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))")
    core = ["inspatio_sim.simulator", "inspatio_sim.world", "inspatio_sim.render", "inspatio_sim.assemble"]
    for module in core:
        out = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[2])
        loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
        assert "inspatio_sim" in loaded
        assert not loaded & {"gymnasium", "rclpy", "envs", "viser", "ray"}, (module, loaded & {"gymnasium", "envs"})
