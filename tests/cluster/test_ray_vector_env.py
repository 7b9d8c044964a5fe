"""The Ray vector env on a real two-node loopback cluster: equal to the native vector env step for step over two
worlds on two nodes, and a killed actor is replaced without ending the run."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the ids)
from envs.ray_vector_env import RayVectorEnv, merge_infos
from inspatio_sim.config import compose
from inspatio_sim.errors import ConfigError
from inspatio_sim.scene_source import load_scene

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install .[ray])")

B = 2  # envs per actor
ENV = {"width": 32, "height": 32, "max_episode_steps": 6}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """Two worlds: the small oracle room with two different placement seeds, saved as Scene folders."""
    paths = []
    for seed in (0, 1):
        out = tmp_path_factory.mktemp(f"world{seed}")
        load_scene(compose(["scene=small", f"scene.oracle.seed={seed}"]).scene).save(out)
        paths.append(str(out))
    return paths


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def _part(batch: dict, sl: slice) -> dict:
    return {k: v[sl] for k, v in batch.items() if not isinstance(v, dict)}


def test_equals_native_step_for_step_and_survives_a_killed_actor(ray_cluster, worlds):
    vec = gym.make_vec("InSpatio/PointNav-v0", num_envs=2 * B, worlds=worlds, address=ray_cluster.address, **ENV)
    natives = [gym.make_vec("InSpatio/PointNav-v0", num_envs=B, world=w, **ENV) for w in worlds]
    try:
        assert isinstance(vec, RayVectorEnv) and vec.actor_worlds == worlds
        assert vec.worlds == [worlds[0]] * B + [worlds[1]] * B  # round robin, contiguous slices
        assert len(set(vec.nodes)) == 2  # one actor per node
        assert vec.single_observation_space == natives[0].single_observation_space
        assert vec.single_action_space == natives[0].single_action_space
        obs, info = vec.reset(seed=5)
        for a, nat in enumerate(natives):  # actor a's envs = a native env over worlds[a] seeded 5 + offset
            n_obs, n_info = nat.reset(seed=5 + a * B)
            sl = slice(a * B, (a + 1) * B)
            assert _equal(_part(obs, sl), n_obs) and _equal(_part(info, sl), n_info)
        rng = np.random.default_rng(0)
        ended = 0
        for _ in range(10):  # crosses the 6-step truncation: next_step autoreset on both sides
            act = rng.uniform(-1, 1, (2 * B, 2)).astype(np.float32)
            o, r, te, tr, inf = vec.step(act)
            ended += int((te | tr).sum())
            for a, nat in enumerate(natives):
                sl = slice(a * B, (a + 1) * B)
                n_o, n_r, n_te, n_tr, n_inf = nat.step(act[sl])
                assert _equal(_part(o, sl), n_o) and _equal(_part(inf, sl), n_inf)
                assert np.array_equal(r[sl], n_r) and np.array_equal(te[sl], n_te) and np.array_equal(tr[sl], n_tr)
        assert ended >= 2 * B

        # kill actor 0 mid-rollout: its envs end (truncated, event in info), the run goes on
        last = o
        ray.kill(vec.actors[0], no_restart=True)
        o, r, te, tr, inf = vec.step(act)
        assert vec.restarts == [1, 0]
        assert inf["actor_restarted"][:B].all() and inf["_actor_restarted"].tolist() == [True] * B + [False] * B
        assert "died" in inf["actor_error"][0]
        assert tr[:B].all() and not te[:B].any() and np.array_equal(r[:B], np.zeros(B))
        assert np.array_equal(o["rgb"][:B], last["rgb"][:B])  # the ended episodes' last observation
        n_o, *_ = natives[1].step(act[B:])
        assert _equal(_part(o, slice(B, 2 * B)), n_o)  # the other actor is untouched
        for _ in range(3):
            o, r, te, tr, inf = vec.step(act)
            assert "actor_restarted" not in inf and o["rgb"].shape == (2 * B, 32, 32, 3)
        assert len(set(vec.nodes)) >= 1 and vec.restarts == [1, 0]
    finally:
        vec.close()
        for nat in natives:
            nat.close()
    assert not ray.is_initialized()  # the env connected itself, so close() disconnected it


def test_seeded_runs_reproducible_torch_obs_and_sampled_assignment(connected, worlds):
    vec = RayVectorEnv(num_envs=3, worlds=worlds, num_actors=2, task="videoworld", torch_obs=True,
                       world_assignment="sampled", world_seed=3, width=16, height=16)

    def run() -> list[np.ndarray]:
        obs, info = vec.reset(seed=11)
        assert isinstance(obs["rgb"], torch.Tensor) and obs["rgb"].dtype == torch.uint8
        assert isinstance(info["pose"], torch.Tensor)
        frames = [obs["rgb"].numpy()]
        for t in range(3):
            o, r, *_ = vec.step(torch.full((3, 2), 0.5 - 0.3 * t))
            assert isinstance(r, torch.Tensor) and r.dtype == torch.float32
            frames.append(o["rgb"].numpy())
        return frames

    try:
        assert vec.sizes == [2, 1]
        expected = np.random.default_rng(3).integers(0, 2, 2)
        assert vec.actor_worlds == [worlds[int(i)] for i in expected]
        first, second = run(), run()
        assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
        assert not np.array_equal(first[0], first[-1])  # the agents did move
    finally:
        vec.close()
    assert ray.is_initialized()  # a Ray the caller connected stays connected


def test_bad_arguments_fail_before_any_actor():
    with pytest.raises(ConfigError, match="worlds must be"):
        RayVectorEnv(num_envs=2, worlds=[])
    with pytest.raises(ConfigError, match="num_actors"):
        RayVectorEnv(num_envs=2, worlds=["a"], num_actors=3)
    with pytest.raises(ConfigError, match="world_assignment"):
        RayVectorEnv(num_envs=2, worlds=["a"], world_assignment="random")
    with pytest.raises(ConfigError, match=r"worlds=\[\.\.\.\]"):
        RayVectorEnv(num_envs=2, worlds=["a"], world="b")
    with pytest.raises(ConfigError, match="unknown environment argument"):
        RayVectorEnv(num_envs=2, worlds=["a"], widht=3)


def test_merge_infos_fills_what_an_actor_lacks():
    a = {"x": np.array([1.0, 2.0]), "_x": np.array([True, True]),
         "final_obs": np.array([None, {"rgb": 1}], object), "_final_obs": np.array([False, True])}
    b = {"x": np.array([3.0]), "_x": np.array([True]), "final_info": {"y": np.array([4]), "_y": np.array([True])}}
    m = merge_infos([a, b], [2, 1])
    assert m["x"].tolist() == [1.0, 2.0, 3.0] and m["_x"].tolist() == [True] * 3
    assert m["final_obs"].tolist() == [None, {"rgb": 1}, None] and m["_final_obs"].tolist() == [False, True, False]
    assert m["final_info"]["y"].tolist() == [0, 0, 4] and m["final_info"]["_y"].tolist() == [False, False, True]
