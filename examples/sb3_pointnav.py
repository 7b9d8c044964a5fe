"""Train Stable-Baselines3 PPO on PointNav through the native-batch VecEnv adapter, then evaluate it.

    python examples/sb3_pointnav.py --steps 50000 --num-envs 16 --out out/sb3_pointnav

Every SB3 step is one Simulator call for all ``--num-envs`` agents (no DummyVecEnv of single envs). The trained
model is evaluated on the bundled ``val`` episode set of the room world with the same metrics as
``inspatio-sim eval`` (success, SPL, collisions...), written to ``OUT/eval_sb3_pointnav.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

from envs.episodes import load_episodes
from policies.base import Policy
from policies.evaluate import make_eval_env, run_episodes, shipped_episodes, write_report
from policies.sb3 import InSpatioSB3VecEnv


class SB3Policy(Policy):
    """A trained SB3 model as a policy of ``inspatio-sim``'s evaluation (deterministic actions)."""

    name = "sb3"

    def __init__(self, model: PPO) -> None:
        self.model = model

    def act(self, obs, info):
        return self.model.predict(obs, deterministic=True)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50_000, help="agent steps to train (all envs together)")
    ap.add_argument("--minutes", type=float, default=30.0, help="stop training after this many minutes")
    ap.add_argument("--num-envs", type=int, default=16, help="agents per Simulator call")
    ap.add_argument("--out", default="out/sb3_pointnav", help="output directory")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    kwargs = {"width": 64, "height": 48, "depth": True, "max_episode_steps": 150}
    venv = VecMonitor(InSpatioSB3VecEnv(env_id="InSpatio/PointNav-v0", num_envs=args.num_envs, **kwargs))
    model = PPO("MultiInputPolicy", venv, n_steps=64, batch_size=256, n_epochs=4, learning_rate=2.5e-4,
                ent_coef=0.01, seed=args.seed, verbose=0, tensorboard_log=str(out / "tb"))
    t0 = time.perf_counter()

    from stable_baselines3.common.callbacks import BaseCallback

    class Budget(BaseCallback):
        def _on_step(self) -> bool:
            return time.perf_counter() - t0 < args.minutes * 60

    model.learn(args.steps, callback=Budget(), progress_bar=True)
    minutes = (time.perf_counter() - t0) / 60
    model.save(out / "sb3_ppo_pointnav")
    venv.close()
    episodes = load_episodes(shipped_episodes("room", "pointnav"))
    env = make_eval_env("pointnav", 8, episodes=episodes, max_steps=300, env_kwargs={"width": 64, "height": 48},
                        overrides=[])
    records, frames = run_episodes(env, SB3Policy(model), len(episodes), video_episodes=2, desc="eval sb3")
    env.close()
    report = write_report(out, "sb3", "pointnav", records, frames,
                          {"episode_source": episodes.path, "train_steps": int(model.num_timesteps),
                           "train_minutes": round(minutes, 1)})
    m = report["metrics"]
    print(f"SB3 PPO: {model.num_timesteps} steps in {minutes:.1f} min; val success {m['success']:.3f}, "
          f"SPL {m['spl']:.3f} ({len(records)} episodes) -> {out}")


if __name__ == "__main__":
    main()
