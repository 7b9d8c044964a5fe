"""PPO, torch-native, in one file (cleanrl style): ``inspatio-sim train ppo task=pointnav ...`` (``train.ppo.*``).

Read top to bottom:

1. :class:`Agent`: a CNN over RGB (+ depth) and an MLP over the point-goal (``log(1 + distance)``, ``cos``/``sin``
   of the bearing), a shared 256-unit trunk, a value head and a policy head: Gaussian with a learned,
   state-independent log-std for continuous actions (``ground``, ``fly``, ``robot``; the env clips to [-1, 1]),
   categorical for ``discrete``.
2. :func:`train`: rollouts from the native vector env with ``torch_obs=True`` and ``autoreset_mode=same_step``, so
   observations, rewards and flags stay on the simulation device and every step of the rollout buffer belongs to
   one episode's transition; generalised advantage estimation (truncation treated as termination, as cleanrl);
   clipped surrogate, value loss, entropy bonus, Adam with linear learning-rate annealing, gradient clipping.
3. Seeding (torch, the envs, the minibatch order), an atomic checkpoint (``run_dir/checkpoint.pt``: weights,
   optimiser, counters, RNG states, env settings) every ``checkpoint_every`` updates and at the end, resumed when
   ``resume=true``; logs as CSV (``progress.csv``) and TensorBoard events (``tb/``), a learning curve
   (``learning_curve.png``), a tqdm progress bar. Training stops after ``total_steps`` agent steps or ``minutes``.
4. :class:`PPOPolicy`: a checkpoint as a :class:`~policies.base.Policy` (deterministic: the mean / the arg-max).
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from tqdm import tqdm

from inspatio_sim.errors import ConfigError, InSpatioError
from inspatio_sim.fileio import atomic_write
from policies.base import Policy, unwrap

CHECKPOINT = "checkpoint.pt"
CSV_FIELDS = ("update", "global_step", "minutes", "episodes", "return", "success", "spl", "coverage", "length",
              "policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "lr", "sps")


class CheckpointError(InSpatioError):
    """A PPO checkpoint is missing, unreadable, or does not fit the environment."""


# -- 1. the network ---------------------------------------------------------------------------------------------
def layer_init(layer: nn.Module, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights, constant bias (cleanrl's initialisation)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class Agent(nn.Module):
    """Actor-critic over ``rgb (B, H, W, 3)`` uint8, optional ``depth (B, H, W, 1)`` metres and optional
    ``pointgoal (B, 2)`` (distance m, bearing rad).

    Args:
        height, width: Image size.
        depth: Whether the depth image is an input channel (clipped to 10 m, scaled to [0, 1]).
        pointgoal: Whether the point-goal is an input.
        action_dim: Continuous action size, or the number of discrete actions.
        discrete: Categorical instead of Gaussian policy.
    """

    def __init__(self, height: int, width: int, depth: bool, pointgoal: bool, action_dim: int, discrete: bool
                 ) -> None:
        super().__init__()
        self.depth, self.pointgoal, self.discrete = depth, pointgoal, discrete
        channels = 3 + int(depth)
        self.cnn = nn.Sequential(
            layer_init(nn.Conv2d(channels, 32, 5, stride=2)), nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 3, stride=2)), nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=2)), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, channels, height, width)).shape[1]
        goal_dim = 32 if pointgoal else 0
        self.goal = nn.Sequential(layer_init(nn.Linear(3, 32)), nn.ReLU()) if pointgoal else None
        self.trunk = nn.Sequential(layer_init(nn.Linear(flat + goal_dim, 256)), nn.ReLU())
        self.critic = layer_init(nn.Linear(256, 1), std=1.0)
        self.actor = layer_init(nn.Linear(256, action_dim), std=0.01)
        self.log_std = nn.Parameter(torch.full((action_dim,), -0.5)) if not discrete else None

    def features(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, 256)`` trunk features of a batched observation (tensors on the agent's device)."""
        x = obs["rgb"].float().permute(0, 3, 1, 2) / 255.0
        if self.depth:
            x = torch.cat([x, obs["depth"].float().permute(0, 3, 1, 2).clamp(0, 10) / 10.0], 1)
        h = [self.cnn(x)]
        if self.goal is not None:
            g = obs["pointgoal"].float()
            h.append(self.goal(torch.stack([torch.log1p(g[:, 0].clamp(min=0, max=100)), torch.cos(g[:, 1]),
                                            torch.sin(g[:, 1])], 1)))
        return self.trunk(torch.cat(h, 1))

    def value(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.critic(self.features(obs)).squeeze(1)

    def distribution(self, hidden: torch.Tensor) -> torch.distributions.Distribution:
        out = self.actor(hidden)
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        return torch.distributions.Normal(out, self.log_std.exp().expand_as(out))  # type: ignore[union-attr]

    def act_and_value(self, obs: dict[str, torch.Tensor], action: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, log-probability, entropy, value); samples an action when ``action`` is ``None``."""
        hidden = self.features(obs)
        dist = self.distribution(hidden)
        if action is None:
            action = dist.sample()
        logp, ent = dist.log_prob(action), dist.entropy()
        if not self.discrete:
            logp, ent = logp.sum(1), ent.sum(1)
        return action, logp, ent, self.critic(hidden).squeeze(1)

    def deterministic(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The mode of the policy: the mean (continuous, clipped to [-1, 1]) or the most likely action."""
        out = self.actor(self.features(obs))
        return out.argmax(1) if self.discrete else out.clamp(-1.0, 1.0)


def agent_for(space: spaces.Dict, action_space: spaces.Space) -> Agent:
    """The :class:`Agent` for an environment's single observation and action spaces."""
    h, w = space["rgb"].shape[:2]
    discrete = isinstance(action_space, spaces.Discrete)
    dim = int(action_space.n) if discrete else int(np.prod(action_space.shape))
    return Agent(h, w, "depth" in space.spaces, "pointgoal" in space.spaces, dim, discrete)


# -- 2. training ------------------------------------------------------------------------------------------------
def env_kwargs(p: Any) -> dict[str, Any]:
    """The environment settings a checkpoint is tied to (observation size, depth, action model)."""
    return {"width": int(p.width), "height": int(p.height), "depth": bool(p.depth),
            "action_model": str(p.action_model)}


def make_train_env(p: Any, overrides: list[str], device: str) -> Any:
    """The native vector env PPO trains in (``torch_obs``, ``same_step`` autoreset)."""
    from envs.vector_env import InSpatioVectorEnv

    return InSpatioVectorEnv(num_envs=int(p.num_envs), task=str(p.task), max_episode_steps=int(p.max_episode_steps),
                             autoreset_mode="same_step", torch_obs=True, device=device, overrides=list(overrides),
                             **env_kwargs(p))


def train(p: Any, run_dir: str | Path, overrides: list[str] | None = None, device: str = "cpu",
          progress: bool = True, env: Any = None) -> dict[str, Any]:
    """Train PPO with settings ``p`` (``train.ppo``) in ``run_dir``; return the final log row plus paths (and the
    trained ``agent``).

    ``overrides`` are the hydra overrides of the World (``scene=...``, ``scene.path=...``); ``env`` an already
    built native vector env to train in (tests).
    """
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(int(p.seed))
    np.random.seed(int(p.seed))
    own_env = env is None
    env = make_train_env(p, overrides or [], device) if env is None else env
    dev = env.device
    try:
        agent = agent_for(env.single_observation_space, env.single_action_space).to(dev)
        optimizer = torch.optim.Adam(agent.parameters(), lr=float(p.lr), eps=1e-5)
        b, n = env.num_envs, int(p.num_steps)
        batch = b * n
        total_updates = max(1, int(p.total_steps) // batch)
        state = {"update": 0, "global_step": 0, "seconds": 0.0, "episodes": 0}
        ckpt_path = run / CHECKPOINT
        if bool(p.resume) and ckpt_path.is_file():
            state = _load_into(ckpt_path, agent, optimizer, p)
            print(f"ppo: resumed from {ckpt_path} at update {state['update']} ({state['global_step']} steps)")
        writer = _summary_writer(run / "tb")
        log_rows: list[dict[str, Any]] = _read_csv(run / "progress.csv") if state["update"] else []

        # rollout storage, on the device
        space = env.single_observation_space
        obs_buf = {k: torch.zeros((n, b, *s.shape), dtype=_torch_dtype(s.dtype), device=dev)
                   for k, s in space.spaces.items()}
        act_shape = () if agent.discrete else env.single_action_space.shape
        actions = torch.zeros((n, b, *act_shape), dtype=torch.long if agent.discrete else torch.float32, device=dev)
        logprobs, rewards, dones, values = (torch.zeros((n, b), device=dev) for _ in range(4))

        obs, _ = env.reset(seed=int(p.seed) + 1000 * state["update"])
        next_done = torch.zeros(b, device=dev)
        ep_return = torch.zeros(b, device=dev)
        ep_length = torch.zeros(b, device=dev)
        finished: list[dict[str, float]] = []
        t_start = time.perf_counter() - state["seconds"]
        budget = float(p.minutes) * 60.0
        bar = tqdm(total=total_updates * batch, initial=state["global_step"], desc=f"ppo {p.task}", unit="step",
                   disable=not progress, dynamic_ncols=True)
        update = state["update"]
        row: dict[str, Any] = {}
        while update < total_updates and time.perf_counter() - t_start < budget:
            update += 1
            lr = float(p.lr) * (1.0 - (update - 1) / total_updates)
            optimizer.param_groups[0]["lr"] = lr
            # -- rollout (on the device) --
            for step in range(n):
                for k in obs_buf:
                    obs_buf[k][step] = obs[k]
                dones[step] = next_done
                with torch.no_grad():
                    action, logp, _, value = agent.act_and_value(obs)
                values[step], actions[step], logprobs[step] = value, action, logp
                obs, reward, terminated, truncated, info = env.step(action)
                rewards[step] = reward.float()
                done = terminated | truncated
                next_done = done.float()
                ep_return += reward.float()
                ep_length += 1
                if bool(done.any()):
                    final = info["final_info"]
                    for i in torch.nonzero(done).flatten().tolist():
                        rec = {"return": float(ep_return[i]), "length": float(ep_length[i])}
                        for key in ("success", "spl", "coverage"):
                            if key in final:
                                rec[key] = float(final[key][i])
                        finished.append(rec)
                    ep_return[done] = 0.0
                    ep_length[done] = 0.0
            # -- GAE --
            with torch.no_grad():
                next_value = agent.value(obs)
                advantages = torch.zeros_like(rewards)
                last = torch.zeros(b, device=dev)
                for t in reversed(range(n)):
                    nonterminal = 1.0 - (next_done if t == n - 1 else dones[t + 1])
                    following = next_value if t == n - 1 else values[t + 1]
                    delta = rewards[t] + float(p.gamma) * following * nonterminal - values[t]
                    last = delta + float(p.gamma) * float(p.gae_lambda) * nonterminal * last
                    advantages[t] = last
                returns = advantages + values
            # -- optimise --
            flat_obs = {k: v.reshape(batch, *v.shape[2:]) for k, v in obs_buf.items()}
            flat_act = actions.reshape(batch, *act_shape)
            flat_logp, flat_adv = logprobs.reshape(-1), advantages.reshape(-1)
            flat_ret = returns.reshape(-1)
            mb = batch // int(p.minibatches)
            gen = torch.Generator().manual_seed(int(p.seed) * 100003 + update)
            stats = []
            for _ in range(int(p.epochs)):
                order = torch.randperm(batch, generator=gen).to(dev)
                for start in range(0, batch, mb):
                    idx = order[start:start + mb]
                    _, newlogp, entropy, newvalue = agent.act_and_value({k: v[idx] for k, v in flat_obs.items()},
                                                                        flat_act[idx])
                    logratio = newlogp - flat_logp[idx]
                    ratio = logratio.exp()
                    with torch.no_grad():
                        approx_kl = ((ratio - 1) - logratio).mean()
                        clipfrac = ((ratio - 1.0).abs() > float(p.clip)).float().mean()
                    adv = flat_adv[idx]
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                    pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - float(p.clip), 1 + float(p.clip))).mean()
                    v_loss = 0.5 * ((newvalue - flat_ret[idx]) ** 2).mean()
                    ent = entropy.mean()
                    loss = pg_loss - float(p.ent_coef) * ent + float(p.vf_coef) * v_loss
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(agent.parameters(), float(p.max_grad_norm))
                    optimizer.step()
                    stats.append([pg_loss.item(), v_loss.item(), ent.item(), approx_kl.item(), clipfrac.item()])
            # -- log --
            state["global_step"] += batch
            state["episodes"] += len(finished)
            elapsed = time.perf_counter() - t_start
            s = np.mean(stats, 0)
            row = {"update": update, "global_step": state["global_step"], "minutes": round(elapsed / 60, 3),
                   "episodes": state["episodes"], "policy_loss": float(s[0]), "value_loss": float(s[1]),
                   "entropy": float(s[2]), "approx_kl": float(s[3]), "clipfrac": float(s[4]), "lr": lr,
                   "sps": round(state["global_step"] / max(elapsed, 1e-9), 1)}
            for key in ("return", "success", "spl", "coverage", "length"):
                vals = [f[key] for f in finished if key in f]
                row[key] = float(np.mean(vals)) if vals else math.nan
            finished = []
            log_rows.append(row)
            for key, value in row.items():
                if key not in ("update", "global_step") and isinstance(value, int | float) and math.isfinite(value):
                    writer.add_scalar(f"ppo/{key}", value, state["global_step"])
            bar.update(batch)
            bar.set_postfix(ret=f"{row['return']:.2f}", succ=f"{row['success']:.2f}", kl=f"{s[3]:.3f}")
            state["update"], state["seconds"] = update, elapsed
            if update % int(p.checkpoint_every) == 0 or update == total_updates:
                save_checkpoint(ckpt_path, agent, optimizer, state, p)
                _write_csv(run / "progress.csv", log_rows)
        bar.close()
        state["seconds"] = time.perf_counter() - t_start
        save_checkpoint(ckpt_path, agent, optimizer, state, p)
        _write_csv(run / "progress.csv", log_rows)
        writer.close()
        curve = learning_curve(log_rows, run / "learning_curve.png", str(p.task))
        return {**row, "checkpoint": str(ckpt_path), "csv": str(run / "progress.csv"), "curve": str(curve),
                "updates": state["update"], "minutes_total": round(state["seconds"] / 60, 2), "agent": agent}
    finally:
        if own_env:
            env.close()


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return {np.dtype(np.uint8): torch.uint8, np.dtype(np.float32): torch.float32}.get(np.dtype(dtype), torch.float32)


# -- 3. checkpoints and logs ------------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, agent: Agent, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                    p: Any) -> Path:
    """Write the checkpoint atomically (a crash mid-write leaves the previous one intact)."""
    from omegaconf import OmegaConf

    settings = OmegaConf.to_container(p, resolve=True) if OmegaConf.is_config(p) else dict(vars(p))
    blob = {"format": "inspatio-sim/ppo", "version": 1, "agent": agent.state_dict(),
            "optimizer": optimizer.state_dict(), "state": dict(state), "settings": settings,
            "env": env_kwargs(p), "task": str(p.task),
            "arch": {"height": int(p.height), "width": int(p.width), "depth": agent.depth,
                     "pointgoal": agent.pointgoal, "discrete": agent.discrete,
                     "action_dim": agent.actor.out_features},
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}}
    target = Path(path)
    with atomic_write(target) as tmp:
        torch.save(blob, tmp)
    return target


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (raises :class:`CheckpointError` with the reason)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist (train one with `inspatio-sim train ppo`)")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # any unpickling failure means "not a checkpoint"
        raise CheckpointError(f"checkpoint {p} is not readable: {e}") from e
    if not isinstance(blob, dict) or blob.get("format") != "inspatio-sim/ppo":
        raise CheckpointError(f"{p} is not an inspatio-sim PPO checkpoint")
    return blob


def checkpoint_env_kwargs(path: str | Path) -> dict[str, Any]:
    """The environment settings (``width``, ``height``, ``depth``, ``action_model``) a checkpoint was trained with."""
    return dict(load_checkpoint(path)["env"])


def _load_into(path: Path, agent: Agent, optimizer: torch.optim.Optimizer, p: Any) -> dict[str, Any]:
    blob = load_checkpoint(path)
    if blob["env"] != env_kwargs(p) or blob["task"] != str(p.task):
        raise CheckpointError(f"{path} was trained with task {blob['task']} and env {blob['env']}, not {p.task} "
                              f"{env_kwargs(p)}: use another run_dir or resume=false")
    agent.load_state_dict(blob["agent"])
    optimizer.load_state_dict(blob["optimizer"])
    torch.set_rng_state(blob["rng"]["torch"])
    np.random.set_state(blob["rng"]["numpy"])
    return dict(blob["state"])


def _summary_writer(path: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path))


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) if v not in ("", "nan") else math.nan for k, v in r.items()} for r in csv.DictReader(f)]


def learning_curve(rows: list[dict[str, Any]], path: str | Path, task: str) -> Path:
    """``learning_curve.png``: success / SPL (PointNav) or coverage (Explore) and the mean return over steps."""
    from policies.plots import line_chart

    x = np.array([r["global_step"] for r in rows], np.float64)
    keys = ("success", "spl") if task == "pointnav" else ("coverage",)
    series = {k: np.array([r.get(k, math.nan) for r in rows], np.float64) for k in keys}
    series["return/10"] = np.array([r.get("return", math.nan) for r in rows], np.float64) / 10
    return line_chart(x, series, path, f"PPO {task}: per-update means of finished training episodes", "agent steps")


# -- 4. a checkpoint as a policy --------------------------------------------------------------------------------
class PPOPolicy(Policy):
    """A trained :class:`Agent` acting deterministically in a native vector env (numpy or torch observations)."""

    name = "ppo"

    def __init__(self, agent: Agent, device: str | torch.device = "cpu") -> None:
        self.agent = agent.to(device).eval()
        self.device = torch.device(device)

    @classmethod
    def load(cls, path: str | Path, env: Any = None, device: str | None = None) -> PPOPolicy:
        """Load a checkpoint; with ``env``, check that its spaces match the checkpoint's (one clear line)."""
        blob = load_checkpoint(path)
        a = blob["arch"]
        agent = Agent(a["height"], a["width"], a["depth"], a["pointgoal"], a["action_dim"], a["discrete"])
        agent.load_state_dict(blob["agent"])
        if env is not None:
            native = unwrap(env)
            expected = agent_for(native.single_observation_space, native.single_action_space)
            shapes = {k: tuple(v.shape) for k, v in expected.state_dict().items()}
            if shapes != {k: tuple(v.shape) for k, v in agent.state_dict().items()} or \
                    expected.depth != agent.depth or expected.discrete != agent.discrete:
                raise CheckpointError(f"checkpoint {path} was trained with {blob['env']} on {blob['task']}; the "
                                      "environment's observations or actions differ")
        dev = device or (str(unwrap(env).device) if env is not None else "cpu")
        return cls(agent, dev)

    @torch.no_grad()
    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        t = {k: torch.as_tensor(v, device=self.device) for k, v in obs.items()}
        return self.agent.deterministic(t).cpu().numpy()


def run_training(cfg: Any, overrides: list[str], progress: bool = True) -> dict[str, Any]:
    """``inspatio-sim train ppo``: train with ``cfg.train.ppo`` in ``run_dir`` (default ``{out}/train_ppo_{task}``)
    on the configured World; print where everything went."""
    p = cfg.train.ppo
    if p.action_model not in ("ground", "discrete", "fly", "robot"):
        raise ConfigError(f"train.ppo.action_model must be ground, discrete, fly or robot, got '{p.action_model}'")
    run_dir = Path(p.run_dir) if p.run_dir else Path(cfg.out) / f"train_ppo_{p.task}"
    result = train(p, run_dir, overrides, device=str(cfg.device), progress=progress)
    print(f"ppo: {result['updates']} updates, {result.get('global_step', 0):.0f} steps in "
          f"{result['minutes_total']:.1f} min; last update: success {result.get('success', math.nan):.3f}, "
          f"return {result.get('return', math.nan):.3f}")
    print(f"ppo: checkpoint {result['checkpoint']}, log {result['csv']} (+ tb/), curve {result['curve']}")
    return result
