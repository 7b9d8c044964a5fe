"""Evaluation: reproducible for a seed, reports with the headline keys, the CLI command end to end."""

import json

import numpy as np

from inspatio_sim.cli import main
from policies.evaluate import bootstrap_ci, make_eval_env, run_episodes
from policies.random_policy import RandomPolicy

KW = {"width": 16, "height": 12, "action_model": "ground"}


def _random_records(seed):
    env = make_eval_env("pointnav", 2, episodes=None, max_steps=15, env_kwargs=KW, overrides=["scene=small"])
    records, _ = run_episodes(env, RandomPolicy(env, seed=seed), 4, seed=seed, progress=False)
    env.close()
    return records


def test_random_policy_evaluation_is_reproducible_for_a_seed():
    a, b, c = _random_records(3), _random_records(3), _random_records(4)
    assert a == b
    assert a != c


def test_bootstrap_interval_brackets_the_mean():
    v = np.random.default_rng(0).random(50)
    lo, hi = bootstrap_ci(v)
    assert lo < v.mean() < hi and hi - lo < 0.3


def test_eval_command_writes_json_markdown_plot_and_video(tmp_path, capsys):
    rc = main(["eval", "policy=oracle", "task=pointnav", "episodes=3", f"out={tmp_path}", "scene=small",
               "eval.width=16", "eval.height=12", "num_envs=2", "max_steps=60", "eval.video_episodes=1"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "eval_oracle_pointnav.json").read_text())
    assert {"success", "spl", "collisions_per_episode", "coverage"} <= set(report["metrics"])
    assert report["metrics"]["coverage"] is None and report["episodes"] == 3
    assert report["metrics"]["success"] >= 2 / 3
    for ext in ("md", "png", "mp4"):
        assert (tmp_path / f"eval_oracle_pointnav.{ext}").stat().st_size > 0
    assert "success" in capsys.readouterr().out


def test_eval_command_refuses_ppo_without_a_checkpoint(tmp_path, capsys):
    assert main(["eval", "policy=ppo", "episodes=2", f"out={tmp_path}", "scene=small"]) == 2
    assert "needs checkpoint=PATH" in capsys.readouterr().err


def test_episodes_make_command_writes_a_loadable_set(tmp_path, capsys):
    from envs.episodes import load_episodes

    out = tmp_path / "small_val.json.gz"
    assert main(["episodes", "make", "world=small", "task=pointnav", "count=4", "bins=[1.0,2.0,3.0]",
                 f"output={out}"]) == 0, capsys.readouterr().err
    episodes = load_episodes(out, "pointnav")
    assert len(episodes) == 4 and episodes.bins == [1.0, 2.0, 3.0]
    assert "per geodesic bin: 1-2 m: 2, 2-3 m: 2" in capsys.readouterr().out
