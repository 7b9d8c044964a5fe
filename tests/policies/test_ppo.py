"""PPO: a tiny run learns something (its losses change), checkpoints reload to identical actions and resume."""

import csv

import numpy as np
import pytest
import torch

from inspatio_sim.config import compose
from policies.evaluate import make_eval_env
from policies.ppo import CheckpointError, PPOPolicy, load_checkpoint, train

TINY = ["scene=small", "train.ppo.num_envs=2", "train.ppo.num_steps=8", "train.ppo.width=32", "train.ppo.height=24",
        "train.ppo.minibatches=2", "train.ppo.epochs=2", "train.ppo.max_episode_steps=10"]


@pytest.mark.parametrize("action_model", ["ground", "discrete"])
def test_a_tiny_run_changes_the_loss_and_its_checkpoint_acts_identically(action_model, tmp_path):
    p = compose([*TINY, "train.ppo.total_steps=32", f"train.ppo.action_model={action_model}"]).train.ppo
    result = train(p, tmp_path, ["scene=small"], progress=False)
    with open(tmp_path / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and rows[0]["value_loss"] != rows[1]["value_loss"]
    assert (tmp_path / "tb").is_dir() and any((tmp_path / "tb").iterdir())
    assert (tmp_path / "learning_curve.png").stat().st_size > 0
    env = make_eval_env("pointnav", 2, episodes=None, max_steps=10,
                        env_kwargs={"width": 32, "height": 24, "depth": True, "action_model": action_model},
                        overrides=["scene=small"])
    obs, info = env.reset(seed=1)
    policy = PPOPolicy.load(result["checkpoint"], env)
    with torch.no_grad():
        expected = result["agent"].deterministic({k: torch.as_tensor(v) for k, v in obs.items()}).numpy()
    np.testing.assert_array_equal(policy.act(obs, info), expected)
    np.testing.assert_array_equal(PPOPolicy.load(result["checkpoint"], env).act(obs, info), expected)
    env.close()


def test_training_resumes_from_its_checkpoint_and_refuses_another_setup(tmp_path):
    train(compose([*TINY, "train.ppo.total_steps=16"]).train.ppo, tmp_path, ["scene=small"], progress=False)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["state"]["update"] == 1
    result = train(compose([*TINY, "train.ppo.total_steps=32"]).train.ppo, tmp_path, ["scene=small"], progress=False)
    assert result["updates"] == 2 and result["global_step"] == 32
    with pytest.raises(CheckpointError, match="trained with task pointnav"):
        train(compose([*TINY, "train.ppo.total_steps=48", "train.ppo.action_model=discrete"]).train.ppo, tmp_path,
              ["scene=small"], progress=False)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.pt")
