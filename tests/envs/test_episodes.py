"""Fixed episode sets: made in geodesic bins, saved, validated on load and against the World, played in order."""

import gzip
import json

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from envs.episodes import VERSION, EpisodeError, episodes_for_env, load_episodes

SMALL = {"overrides": ["scene=small"], "width": 16, "height": 12}


@pytest.fixture(scope="module")
def episode_file(tmp_path_factory):
    env = gym.make_vec("InSpatio/PointNav-v0", num_envs=1, **SMALL).unwrapped
    episodes = episodes_for_env(env, 6, bins=[1.0, 2.0, 3.5], seed=3)
    env.close()
    return episodes.save(tmp_path_factory.mktemp("ep") / "small_pointnav_val.json.gz"), episodes


def test_episodes_lie_in_their_geodesic_bins_and_round_trip(episode_file):
    path, made = episode_file
    loaded = load_episodes(path, "pointnav")
    assert len(loaded) == 6 and [e.bin for e in loaded.episodes] == [0, 1, 0, 1, 0, 1]
    for e in loaded.episodes:
        lo, hi = loaded.bins[e.bin], loaded.bins[e.bin + 1]
        assert lo <= e.geodesic < hi
    assert [e.goal for e in loaded.episodes] == [e.goal for e in made.episodes]


def test_envs_play_the_episodes_in_order(episode_file):
    path, made = episode_file
    vec = gym.make_vec("InSpatio/PointNav-v0", num_envs=2, episodes=str(path), **SMALL).unwrapped
    _, info = vec.reset(seed=0)
    for ids in ([0, 1], [2, 3]):
        assert vec.episode_ids.tolist() == ids
        for i, k in enumerate(ids):
            e = made.episodes[k]
            np.testing.assert_allclose(info["pose"][i, :2, 3], e.start[:2], atol=1e-4)
            np.testing.assert_allclose(vec.goals()[i, :2], e.goal[:2], atol=1e-6)
            assert vec.sim.heading()[i].item() == pytest.approx(e.yaw, abs=1e-5)
            assert vec.task.start_geodesic[i] == pytest.approx(e.geodesic, abs=0.15)
        _, info = vec.reset()
    vec.close()


def _rewrite(path, tmp_path, change):
    data = json.loads(gzip.decompress(path.read_bytes()))
    change(data)
    out = tmp_path / "changed.json"
    out.write_text(json.dumps(data))
    return out


def test_a_file_of_another_version_or_format_is_refused(episode_file, tmp_path):
    path, _ = episode_file
    with pytest.raises(EpisodeError, match=f"version 99; this inspatio-sim reads version {VERSION}"):
        load_episodes(_rewrite(path, tmp_path, lambda d: d.update(version=99)))
    with pytest.raises(EpisodeError, match="not an inspatio-sim episode file"):
        load_episodes(_rewrite(path, tmp_path, lambda d: d.pop("format")))
    with pytest.raises(EpisodeError, match="episode 1 goal must be a list of 3 finite numbers"):
        load_episodes(_rewrite(path, tmp_path, lambda d: d["episodes"][1].update(goal=[0, "x", 1])))
    with pytest.raises(EpisodeError, match="is for task 'pointnav', not 'explore'"):
        load_episodes(path, "explore")
    with pytest.raises(EpisodeError, match="does not exist"):
        load_episodes(tmp_path / "missing.json")


def test_an_unreachable_goal_is_refused_when_the_env_is_built(episode_file, tmp_path):
    path, _ = episode_file
    env = gym.make_vec("InSpatio/PointNav-v0", num_envs=1, **SMALL).unwrapped
    nav = env.navigation()
    env.close()
    blocked = np.argwhere(~nav.traversable)
    far = blocked[np.argmax(np.abs(blocked - np.array(nav.traversable.shape) / 2).sum(1))]  # a corner, off the floor
    gx, gy = nav.centre(far[None])[0]
    bad = _rewrite(path, tmp_path, lambda d: d["episodes"][2].update(goal=[float(gx), float(gy), 1.4]))
    with pytest.raises(EpisodeError, match=r"episode 2: the goal .* is unreachable from the start"):
        gym.make_vec("InSpatio/PointNav-v0", num_envs=1, episodes=str(bad), **SMALL)
