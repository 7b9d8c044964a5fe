"""``inspatio-sim train star``: the teacher (flow matching) and the few-step student (JDMD) on ``data star`` shards.

* ``stage=teacher``: :func:`~inspatio_sim.model.star.flow.flow_loss` on trajectories of the shards; each frame at its
  own flow time, its history slots the previous ground-truth frames (teacher forcing), its reference slots those the
  cache chose when the data was made.
* ``stage=student``: the student (initialised from the teacher) rolls each trajectory out with its own outputs in the
  history slots (what it will see at run time) and is trained with the JDMD loss
  (:mod:`~inspatio_sim.model.star.jdmd`); the fake model (also from the teacher) learns the student's samples.
  The joint real-data term uses the trajectories' ground-truth frames (or, in ``adapt``, the user's own video frames
  rendered from Worlds that left them out).

Checkpoints are written atomically every ``save_every`` iterations with the optimiser state, and a run resumes from
the output file when it exists (``resume=false``: start over). A CSV of the losses (the training curve) and a PNG plot
go beside the checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from inspatio_sim.errors import ConfigError
from inspatio_sim.model.cache import plucker_rays
from inspatio_sim.model.data import load_shard
from inspatio_sim.model.star import checkpoint as ckpt
from inspatio_sim.model.star.base import classical_base
from inspatio_sim.model.star.flow import (
    TIME_SAMPLINGS,
    WEIGHTINGS,
    Velocity,
    flow_loss,
    noised,
    pixel_weight,
    sample,
    sample_t,
)
from inspatio_sim.model.star.inputs import reference_slots
from inspatio_sim.model.star.jdmd import dmd_direction, jdmd_generator_loss
from inspatio_sim.model.star.network import (
    SLOT_HISTORY,
    SLOT_REFERENCE,
    NetConfig,
    STARNet,
    frame_input,
    history_context,
    slot_input,
    to_unit,
)
from inspatio_sim.model.warp import reproject

STAGES = ("teacher", "student", "all")


@dataclass
class TrainStarConfig:
    """``train.star``: the STAR training recipe (``inspatio-sim train star stage=...``)."""

    stage: str = "teacher"  # teacher (flow matching) | student (JDMD distillation of the teacher) | all (both)
    data: str = "out/data/star"  # directory of `inspatio-sim data star` shards
    out: str = "out/star/star.pt"  # checkpoint written (teacher and student share the file; resumed when present)
    iterations: int = 6000  # optimiser steps of the teacher stage
    student_iterations: int = 300  # optimiser steps of the student stage
    batch: int = 4  # trajectories per step
    window: int = 4  # frames per trajectory per step (history runs through them)
    lr: float = 3e-4  # AdamW learning rate of the teacher (cosine decay to 10 %)
    student_lr: float = 3e-5  # learning rate of the student (fine-tuning the teacher's weights: its final rate)
    fake_lr: float = 1e-4  # learning rate of the JDMD fake model
    weight_decay: float = 0.01  # AdamW weight decay
    hole_weight: float = 4.0  # loss weight of hole pixels against the render's own pixels
    weighting: str = "x0"  # flow-matching time weighting: x0 (t^2: the clean estimate's error) | velocity (1)
    time_sampling: str = "uniform"  # flow times drawn in training: uniform | logit_normal
    history: int = 2  # history slots M seen in training (the cache's model.cache.history_slots)
    student_steps: int = 4  # denoising steps of the student (1-4)
    lambda_real: float = 1.0  # weight of the joint real-data term of JDMD
    lambda_temporal: float = 1.0  # weight of the student's temporal term: its frame against its previous one warped
    dmd_normalise: bool = False  # divide the DMD gradient by mean|x - x0_real| (DMD's normaliser; see jdmd.py)
    seed: int = 0  # torch seed of the run
    save_every: int = 200  # iterations between checkpoints (and log lines)
    resume: bool = True  # continue from `out` when it holds this stage's state
    adapt_windows: int = 4  # `adapt star`: windows of the user's video fine-tuned on (one more is held out)
    adapt_window: int = 4  # `adapt star`: frames per window (left out of the World that renders them)
    adapt_iterations: int = 40  # `adapt star`: fine-tuning steps
    adapt_size: int = 64  # `adapt star`: square resolution of the renders (pixels)
    net: NetConfig = field(default_factory=NetConfig)

    def validate(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"train.star.stage must be one of {', '.join(STAGES)}, got '{self.stage}'")
        for key in ("iterations", "student_iterations", "batch", "window", "save_every", "student_steps",
                    "adapt_windows",
                    "adapt_window", "adapt_iterations", "adapt_size"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"train.star.{key} must be >= 1, got {getattr(self, key)}")
        if self.time_sampling not in TIME_SAMPLINGS:
            raise ConfigError(f"train.star.time_sampling must be one of {', '.join(TIME_SAMPLINGS)}, got "
                              f"'{self.time_sampling}'")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"train.star.weighting must be one of {', '.join(WEIGHTINGS)}, got '{self.weighting}'")
        if not 1 <= int(self.student_steps) <= 4:
            raise ConfigError(f"train.star.student_steps must be 1-4, got {self.student_steps}")
        if (int(self.history) < 0 or not self.lr > 0 or not self.student_lr > 0 or not self.fake_lr > 0
                or self.lambda_real < 0 or self.lambda_temporal < 0):
            raise ConfigError("train.star: history >= 0, lr > 0, student_lr > 0, fake_lr > 0, lambda_real >= 0 and "
                              "lambda_temporal >= 0 are required")
        self.net.validate()

    @property
    def total(self) -> int:
        """Iterations of the configured stage."""
        return int(self.iterations if self.stage == "teacher" else self.student_iterations)


@dataclass
class Episode:
    """Trajectories of one scene at the model's resolution (tensors on the training device).

    Attributes:
        render_rgb: ``(E, T, H, W, 3)`` uint8; ``valid`` ``(E, T, H, W)`` bool; ``depth`` ``(E, T, H, W)`` metres.
        rays: ``(E, T, H, W, 6)`` Plücker coordinates; ``gt`` ``(E, T, H, W, 3)`` in [-1, 1].
        ref_index: ``(E, T, K)`` rows of ``refs`` (-1: empty); ``refs`` ``(N, H, W, 11)`` reference slot inputs.
        base_rgb: ``(E, T, H, W, 3)`` uint8 explicit (classical) completion; ``base_depth`` ``(E, T, H, W)`` its
            depth (metres, 0 = unknown); ``invented`` ``(E, T, H, W)`` bool, its inpainted pixels
            (:func:`~inspatio_sim.model.star.base.classical_base`).
        poses: ``(E, T, 4, 4)`` cameras (``T_world_camera``); ``K`` ``(3, 3)`` their intrinsics.
    """

    render_rgb: torch.Tensor
    valid: torch.Tensor
    depth: torch.Tensor
    rays: torch.Tensor
    gt: torch.Tensor
    ref_index: torch.Tensor
    refs: torch.Tensor
    base_rgb: torch.Tensor
    base_depth: torch.Tensor
    invented: torch.Tensor
    poses: torch.Tensor
    K: torch.Tensor


def load_episodes(data_dir: str | Path, device: str | torch.device = "cpu", limit: int | None = None
                  ) -> tuple[list[Episode], list[dict[str, Any]]]:
    """Every shard listed in ``data_dir/index.json`` as an :class:`Episode`; and the shards' (preset, seed)."""
    root = Path(data_dir)
    index_path = root / "index.json"
    if not index_path.is_file():
        raise ConfigError(f"no training data at {root} (no index.json); write it with `inspatio-sim data star -o "
                          f"{root}`")
    index = json.loads(index_path.read_text())
    shards = index["shards"][:limit] if limit else index["shards"]
    if not shards:
        raise ConfigError(f"{index_path} lists no shards")
    out = []
    for s in tqdm(shards, desc="load shards", unit="shard", leave=False):
        d, _ = load_shard(root / s["file"])
        out.append(episode_from_arrays(d, device))
    return out, [{"preset": s["preset"], "seed": s["seed"]} for s in shards]


def episode_from_arrays(d: dict[str, np.ndarray], device: str | torch.device = "cpu") -> Episode:
    """An :class:`Episode` from a shard's arrays (:func:`~inspatio_sim.model.data.load_shard`); the explicit
    completion is made here (:func:`~inspatio_sim.model.star.base.classical_base`) unless ``d`` carries it."""
    if "base_rgb" not in d:
        d = {**d, **classical_base(d)}
    e, t, h, w = d["render_valid"].shape
    K = torch.as_tensor(d["K"], dtype=torch.float32)
    poses = torch.as_tensor(d["poses"], dtype=torch.float32).reshape(e * t, 4, 4)
    rays = plucker_rays(K, poses, h, w).reshape(e, t, h, w, 6)
    refs = reference_slots(torch.as_tensor(d["ref_rgb"]), torch.as_tensor(d["ref_depth"].astype(np.float32)),
                           torch.as_tensor(d["ref_poses"], dtype=torch.float32),
                           torch.as_tensor(d["ref_K"], dtype=torch.float32), h, w)
    return Episode(render_rgb=torch.as_tensor(d["render_rgb"]).to(device),
                   valid=torch.as_tensor(d["render_valid"]).to(device),
                   depth=torch.as_tensor(d["render_depth"].astype(np.float32)).to(device), rays=rays.to(device),
                   gt=to_unit(torch.as_tensor(d["gt_rgb"])).to(device),
                   ref_index=torch.as_tensor(d["ref_index"], dtype=torch.int64).to(device), refs=refs.to(device),
                   base_rgb=torch.as_tensor(d["base_rgb"]).to(device),
                   base_depth=torch.as_tensor(d["base_depth"], dtype=torch.float32).to(device),
                   invented=torch.as_tensor(d["base_invented"]).to(device),
                   poses=poses.reshape(e, t, 4, 4).to(device), K=K.to(device))


def _batch(ep: Episode, batch: int, window: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """``batch`` random windows of ``window`` frames (trajectories drawn with replacement)."""
    e, t = ep.valid.shape[:2]
    window = min(window, t)
    rows = torch.randint(e, (batch,), generator=gen)
    start = torch.randint(t - window + 1, (batch,), generator=gen)
    steps = start[:, None] + torch.arange(window)[None]
    r, s = rows[:, None].expand_as(steps), steps
    dev = ep.valid.device
    r, s = r.to(dev), s.to(dev)
    return {"rgb": ep.render_rgb[r, s], "valid": ep.valid[r, s], "depth": ep.depth[r, s], "rays": ep.rays[r, s],
            "gt": ep.gt[r, s], "ref_index": ep.ref_index[r, s], "base_rgb": ep.base_rgb[r, s],
            "base_depth": ep.base_depth[r, s], "invented": ep.invented[r, s], "poses": ep.poses[r, s]}


def _ref_context(net: STARNet, ep: Episode, ref_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys/values ``(B, T, K, ...)`` and validity ``(B, T, K)`` of the batch's reference slots (each distinct
    frame encoded once)."""
    frames, inverse = torch.unique(ref_index.clamp(min=0), return_inverse=True)
    kv = net.encode_slots(ep.refs[frames], SLOT_REFERENCE)
    return kv[inverse], ref_index >= 0


def _cond(b: dict[str, torch.Tensor], i: int) -> tuple[torch.Tensor, ...]:
    """Conditioning of step ``i`` in :func:`~inspatio_sim.model.star.network.frame_input`'s order."""
    return (b["rgb"][:, i], b["valid"][:, i], torch.where(b["valid"][:, i], b["depth"][:, i], 0.0), b["rays"][:, i],
            b["base_rgb"][:, i], b["invented"][:, i])


def _history_slot(x: torch.Tensor, b: dict[str, torch.Tensor], i: int) -> torch.Tensor:
    """Slot input of a completed frame ``x (B, H, W, 3)`` at step ``i`` (with the explicit completion's depth, as
    the completer pushes it at run time)."""
    return slot_input(x, b["base_depth"][:, i], b["rays"][:, i])


def teacher_loss(net: STARNet, ep: Episode, b: dict[str, torch.Tensor], cfg: TrainStarConfig,
                 gen: torch.Generator) -> torch.Tensor:
    """Flow-matching loss of one batch (teacher forcing: history = ground-truth frames)."""
    bsz, steps = b["valid"].shape[:2]
    ref_kv, ref_valid = _ref_context(net, ep, b["ref_index"])
    clean = torch.stack([_history_slot(b["gt"][:, i], b, i) for i in range(steps)], 1)
    hist_kv = net.encode_slots(clean.reshape(bsz * steps, *clean.shape[2:]), SLOT_HISTORY)
    hist_kv = hist_kv.reshape(bsz, steps, *hist_kv.shape[1:])
    t = sample_t((bsz, steps), gen, kind=cfg.time_sampling).to(b["gt"].device)
    eps = torch.randn(b["gt"].shape, generator=gen).to(b["gt"].device)
    total = b["gt"].new_zeros(())
    for i in range(steps):
        ctx, valid = history_context(hist_kv, i, cfg.history, ref_kv[:, i], ref_valid[:, i])
        x_t = noised(b["gt"][:, i], eps[:, i], t[:, i])
        v = net(frame_input(x_t, *_cond(b, i)), t[:, i], ctx, valid)
        total = total + flow_loss(v, b["gt"][:, i], eps[:, i], b["valid"][:, i], cfg.hole_weight, t[:, i],
                                  cfg.weighting)
    return total / steps


def _velocity(net: STARNet, c: tuple[torch.Tensor, torch.Tensor], cond: tuple[torch.Tensor, ...]) -> Velocity:
    return lambda x, t: net(frame_input(x, *cond), t, c[0], c[1])


def student_losses(student: STARNet, teacher: STARNet, fake: STARNet, ep: Episode, b: dict[str, torch.Tensor],
                   cfg: TrainStarConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """JDMD generator loss and fake-model loss of one batch; the student rolls the window out with its own outputs
    as history (detached), the teacher and the fake model read the same context."""
    bsz, steps = b["valid"].shape[:2]
    dev = b["gt"].device
    with torch.no_grad():
        t_ref = _ref_context(teacher, ep, b["ref_index"])
    f_ref = _ref_context(fake, ep, b["ref_index"])
    s_ref = _ref_context(student, ep, b["ref_index"])
    gens = [torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=gen))) for _ in range(bsz)]
    hist: dict[str, list[torch.Tensor]] = {"s": [], "t": [], "f": []}
    g_total, f_total = b["gt"].new_zeros(()), b["gt"].new_zeros(())
    logs = {"dmd": 0.0, "real": 0.0, "temporal": 0.0}
    prev: torch.Tensor | None = None
    for i in range(steps):
        cond = _cond(b, i)

        def ctx(which: str, ref: tuple[torch.Tensor, torch.Tensor], i: int = i) -> tuple[torch.Tensor, torch.Tensor]:
            h = hist[which]
            kv = torch.stack(h, 1) if h else ref[0][:, i, :1].detach().new_zeros(ref[0][:, i, :1].shape)
            return history_context(kv, i, cfg.history, ref[0][:, i], ref[1][:, i])

        s_ctx, t_ctx, f_ctx = ctx("s", s_ref), ctx("t", t_ref), ctx("f", f_ref)

        x = sample(_velocity(student, s_ctx, cond), b["gt"][:, i].shape, cfg.student_steps, dev, gens, grad_last=True)
        valid = b["valid"][:, i]
        t = sample_t((bsz,), gen, kind=cfg.time_sampling).to(dev).clamp(0.02, 0.98)
        eps = torch.randn(x.shape, generator=gen).to(dev)
        g = dmd_direction(x, t, eps, _velocity(teacher, t_ctx, cond), _velocity(fake, f_ctx, cond),
                          normalise=cfg.dmd_normalise)
        loss, parts = jdmd_generator_loss(x, g, b["gt"][:, i], pixel_weight(valid, cfg.hole_weight),
                                          cfg.lambda_real)
        if prev is not None and cfg.lambda_temporal > 0:
            temporal = temporal_loss(x, prev, ep.K, b, i, cfg.hole_weight)
            loss = loss + cfg.lambda_temporal * temporal
            logs["temporal"] += float(temporal.detach()) / (steps - 1)
        g_total = g_total + loss
        for k in ("dmd", "real"):
            logs[k] += parts[k] / steps
        xd = x.detach()
        prev = xd
        tf = sample_t((bsz,), gen, kind=cfg.time_sampling).to(dev)
        ef = torch.randn(x.shape, generator=gen).to(dev)
        f_total = f_total + flow_loss(fake(frame_input(noised(xd, ef, tf), *cond), tf, f_ctx[0], f_ctx[1]),
                                      xd, ef, valid, cfg.hole_weight, tf, cfg.weighting)
        slot = _history_slot(xd, b, i)
        with torch.no_grad():
            hist["t"].append(teacher.encode_slots(slot, SLOT_HISTORY))
            hist["s"].append(student.encode_slots(slot, SLOT_HISTORY))
            hist["f"].append(fake.encode_slots(slot, SLOT_HISTORY))
    return g_total / steps, f_total / steps, logs


def temporal_loss(x: torch.Tensor, prev: torch.Tensor, K: torch.Tensor, b: dict[str, torch.Tensor], i: int,
                  hole_weight: float) -> torch.Tensor:
    """The student's temporal term at step ``i`` of a batch window: ``mean w (.) m (.) (x - warp(sg(x_prev)))^2``
    over the pixels ``m`` that the previous step's camera saw (the explicit completion's depth at both steps,
    :func:`~inspatio_sim.model.warp.reproject`), ``w`` the hole weight on the render's holes. ``x``, ``prev``
    ``(B, H, W, 3)``: the student's frames at steps ``i`` and ``i - 1``. A frame that changes only where the view
    changes is what the ``hole_flicker`` benchmark measures."""
    warped, seen = reproject(prev, b["base_depth"][:, i - 1], b["base_depth"][:, i], b["poses"][:, i],
                             b["poses"][:, i - 1], K)
    w = pixel_weight(b["valid"][:, i], hole_weight) * seen[..., None].float()
    return (w * (x - warped.detach()) ** 2).sum() / (w.sum() * x.shape[-1]).clamp(min=1.0)


def _lr(cfg: TrainStarConfig, it: int, base: float) -> float:
    warm = min(1.0, (it + 1) / 50)
    return base * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * it / max(cfg.total, 1))))


def run_stages(cfg: TrainStarConfig, device: str = "cpu", progress: bool = True) -> list[dict[str, Any]]:
    """``stage=teacher|student``: that stage; ``stage=all``: the teacher, then the student distilled from it, on
    the data loaded once. Returns each stage's :func:`train` summary."""
    cfg.validate()
    if cfg.stage != "all":
        return [train(cfg, device=device, progress=progress)]
    episodes, sources = load_episodes(cfg.data, device)

    return [train(replace(cfg, stage=stage), device=device, episodes=episodes, progress=progress, sources=sources)
            for stage in ("teacher", "student")]


def train(cfg: TrainStarConfig, device: str = "cpu", episodes: list[Episode] | None = None,
          progress: bool = True, init: str | Path | None = None, from_student: bool = False,
          sources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run one stage of the recipe; return a summary (losses first/last, minutes, checkpoint path).

    ``episodes``: use these instead of loading ``cfg.data`` (``sources``: their shards' (preset, seed), recorded in
    the checkpoint); ``init``: the checkpoint the student starts from (default: ``cfg.out``, which must hold the
    teacher); ``from_student``: start from ``init``'s student (and fake model) rather than from copies of the teacher
    (fine-tuning).
    """
    cfg.validate()
    if cfg.stage not in ("teacher", "student"):
        raise ConfigError(f"train(): one stage at a time (teacher or student), got '{cfg.stage}'; see run_stages")
    torch.manual_seed(int(cfg.seed))
    gen = torch.Generator().manual_seed(int(cfg.seed))
    sources = list(sources or [])
    if episodes is None:
        episodes, sources = load_episodes(cfg.data, device)
    out = Path(cfg.out)
    nets: dict[str, STARNet] = {}
    meta: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if out.is_file() or (init is not None):
        nets, meta, extra = ckpt.load(init or out, device=device)
    start, history = 0, []
    key = f"{cfg.stage}_state"
    if cfg.stage == "teacher":
        teacher = nets.get("teacher") if cfg.resume and key in extra else None
        if teacher is None:
            teacher = STARNet(cfg.net).to(device)
            meta = {}
        train_nets = {"teacher": teacher}
        params = {"teacher": teacher.parameters()}
    else:
        if "teacher" not in nets:
            raise ConfigError(f"train.star stage=student needs a teacher in {init or out}; run stage=teacher first")
        teacher = nets["teacher"].requires_grad_(False)
        student = nets.get("student") if cfg.resume and key in extra else None
        fake = nets.get("fake") if cfg.resume and key in extra else None
        if from_student and "student" in nets:
            student, fake = _copy(nets["student"], device), _copy(nets.get("fake", teacher), device)
        elif student is None or fake is None:
            student, fake = _copy(teacher, device), _copy(teacher, device)
        train_nets = {"teacher": teacher, "student": student, "fake": fake}
        params = {"student": student.parameters(), "fake": fake.parameters()}
    rates = {"teacher": cfg.lr, "student": cfg.student_lr, "fake": cfg.fake_lr}
    opts = {k: torch.optim.AdamW(p, lr=rates[k], weight_decay=cfg.weight_decay)
            for k, p in params.items()}
    if cfg.resume and key in extra:
        state = extra[key]
        start, history = int(state["iteration"]), list(state["history"])
        for k, o in opts.items():
            o.load_state_dict(state["optim"][k])
        gen.manual_seed(int(cfg.seed) + start)
    for n in train_nets.values():
        n.train()
    t0 = time.perf_counter()
    elapsed0 = float(meta.get(f"{cfg.stage}_minutes", 0.0)) if start else 0.0
    bar = tqdm(range(start, cfg.total), desc=f"train star {cfg.stage}", unit="it", disable=not progress,
               initial=start, total=cfg.total)
    for it in bar:
        ep = episodes[int(torch.randint(len(episodes), (1,), generator=gen))]
        b = _batch(ep, int(cfg.batch), int(cfg.window), gen)
        row: dict[str, float] = {"iteration": it + 1}
        if cfg.stage == "teacher":
            for g in opts["teacher"].param_groups:
                g["lr"] = _lr(cfg, it, cfg.lr)
            loss = teacher_loss(teacher, ep, b, cfg, gen)
            opts["teacher"].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(teacher.parameters(), 1.0)
            opts["teacher"].step()
            row["loss"] = float(loss.detach())
        else:
            for k in opts:
                for g in opts[k].param_groups:
                    g["lr"] = _lr(cfg, it, rates[k])
            g_loss, f_loss, parts = student_losses(student, teacher, fake, ep, b, cfg, gen)
            opts["student"].zero_grad(set_to_none=True)
            opts["fake"].zero_grad(set_to_none=True)
            (g_loss + f_loss).backward()  # the two losses touch disjoint parameters (x is detached for the fake)
            for k in ("student", "fake"):
                torch.nn.utils.clip_grad_norm_(train_nets[k].parameters(), 1.0)
                opts[k].step()
            row.update({"loss": float(g_loss.detach()), "fake_loss": float(f_loss.detach()), **parts})
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}")
        last = it + 1 == cfg.total
        if (it + 1) % int(cfg.save_every) == 0 or last:
            minutes = elapsed0 + (time.perf_counter() - t0) / 60
            meta.update({f"{cfg.stage}_minutes": minutes, f"{cfg.stage}_recipe": asdict(cfg),
                         "data_sources": sources or meta.get("data_sources", []), "history": cfg.history,
                         "student_steps": cfg.student_steps})
            state = {"iteration": it + 1, "history": history,
                     "optim": {k: o.state_dict() for k, o in opts.items()}}
            extra_out = {key: state}
            if cfg.stage == "student" and "teacher_state" in extra:
                extra_out["teacher_state"] = {"iteration": extra["teacher_state"]["iteration"], "history": [],
                                              "optim": {}}
            keep = dict(train_nets)
            if cfg.stage == "teacher" and "student" in nets:
                keep.update({k: v for k, v in nets.items() if k != "teacher"})
            ckpt.save(out, keep, meta, extra_out)
    bar.close()
    write_curve(history, out.with_name(out.stem + f"_{cfg.stage}_curve.csv"))
    first = float(np.mean([r["loss"] for r in history[:10]])) if history else float("nan")
    final = float(np.mean([r["loss"] for r in history[-10:]])) if history else float("nan")
    return {"stage": cfg.stage, "checkpoint": str(out), "loss_first": first, "loss_last": final,
            "iterations": len(history), "minutes": elapsed0 + (time.perf_counter() - t0) / 60}


def _copy(net: STARNet, device: str | torch.device) -> STARNet:
    twin = STARNet(net.config).to(device)
    twin.load_state_dict(net.state_dict())
    return twin.requires_grad_(True)


def write_curve(history: list[dict[str, float]], path: Path) -> None:
    """The training curve as CSV (one row per iteration) and a PNG plot beside it (when matplotlib is present)."""
    if not history:
        return
    keys = sorted({k for r in history for k in r}, key=lambda k: (k != "iteration", k))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    plot_curve(history, keys[1:], path.with_suffix(".png"))


def plot_curve(history: list[dict[str, float]], keys: list[str], path: Path, size: tuple[int, int] = (640, 360)
               ) -> None:
    """A PNG of the smoothed curves ``keys`` against the iteration (log scale; OpenCV drawing, no plotting library)."""
    import cv2

    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    x0, x1, y0, y1 = 50, w - 10, 10, h - 30
    series = {}
    for k in keys:
        vals = np.array([r.get(k, np.nan) for r in history], dtype=float)
        vals = vals[np.isfinite(vals) & (vals > 0)]
        if len(vals) < 2:
            continue
        n = max(1, len(vals) // 50)
        series[k] = np.log10(np.convolve(vals, np.ones(n) / n, mode="valid"))
    if not series:
        return
    lo = min(float(v.min()) for v in series.values())
    hi = max(float(v.max()) for v in series.values())
    hi = hi if hi > lo else lo + 1e-3
    colours = [(200, 60, 20), (20, 120, 220), (40, 160, 40), (160, 40, 160), (0, 0, 0)]
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    for c, (k, v) in enumerate(series.items()):
        xs = x0 + (x1 - x0) * np.arange(len(v)) / max(len(v) - 1, 1)
        ys = y1 - (y1 - y0) * (v - lo) / (hi - lo)
        pts = np.stack([xs, ys], 1).round().astype(np.int32)
        colour = colours[c % len(colours)]
        cv2.polylines(img, [pts], False, colour, 1, cv2.LINE_AA)
        cv2.putText(img, k, (x0 + 8, y0 + 16 + 16 * c), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    cv2.putText(img, f"log10 loss {lo:.2f}..{hi:.2f}, iterations 1..{len(history)}", (x0, h - 10),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img[..., ::-1])
